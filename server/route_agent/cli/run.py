"""The `route` command's real run: consume the pipeline's events and print the transcript."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

import click

from route_agent.cli.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from route_agent.cli.render import human_decision, json_base, verification_line
from route_agent.pipeline import events as ev
from route_agent.pipeline.prepare import PreparedRun
from route_agent.pipeline.run import RunRequest, run_task


def _say(line: str, as_json: bool) -> None:
    # The transcript goes to stdout; in --json mode progress goes to stderr so stdout stays one object.
    click.echo(line, err=as_json)


def _finding_line(f: Any) -> str:
    return f"  {f.location()} [{f.kind}/{f.rule or f.check}] {f.message.splitlines()[0][:160] if f.message else ''}"


async def _consume(req: RunRequest, as_json: bool,  # noqa: PLR0912 (one branch per pipeline event)
                   notes: list[str] | None = None) -> tuple[ev.RunFinished | None, list[dict[str, Any]]]:
    final: ev.RunFinished | None = None
    escalations: list[dict[str, Any]] = []
    sandbox_notes = notes if notes is not None else []
    async for event in run_task(req):
        if isinstance(event, ev.AttemptStarted):
            _say(f"attempt {event.attempt_no}: {event.lane} lane ({event.model})", as_json)
        elif isinstance(event, ev.AgentStep):
            _say("  " + event.line, as_json)
        elif isinstance(event, ev.AgentFinished):
            done = f"  agent ({event.executor}): {event.status}" + (f" after {event.steps} step(s)" if event.steps else "")
            _say(done if event.status in ("submitted", "finished") else f"{done}: {event.message}", as_json)
        elif isinstance(event, ev.LaneReplied):
            _say(
                f"  reply: {event.input_tokens} in / {event.output_tokens} out tokens, ${event.cost_usd:.4f}, {event.latency_seconds:.1f} s"
                + (" (fallback model)" if event.fallback_used else ""),
                as_json,
            )
        elif isinstance(event, ev.WorktreePrepared):
            _say(f"  preparing a worktree for this repository, once: {event.seconds:.1f} s (later attempts reuse it)", as_json)
        elif isinstance(event, ev.PatchApplied):
            _say(f"  patch: applied in a worktree ({len(event.files)} file(s): {', '.join(event.files[:5])})", as_json)
        elif isinstance(event, ev.PatchRejected):
            _say(f"  patch: rejected ({event.reason})", as_json)
        elif isinstance(event, ev.ChecksStarted):
            _say(f"  checks: {', '.join(event.names) or '(none)'} [sandbox: {event.sandbox}]", as_json)
            if event.dependencies:
                _say(f"  installed folders the checks see, read-only: {', '.join(event.dependencies)}", as_json)
            if not event.sandboxed:
                sandbox_notes.append(event.note)
                _say(f"  {event.note.replace('NOT sandboxed', 'NOT SANDBOXED', 1)}: the repository's code runs as you", as_json)
        elif isinstance(event, ev.CheckFinished):
            _say(f"  check {event.name}: {event.status} ({event.duration_s:.1f} s)", as_json)
        elif isinstance(event, ev.VerifierDone):
            problem = "" if event.valid else " - " + (event.summary[:200] or "invalid reply")  # an invalid reply says why
            _say(f"  verifier: confidence {event.confidence:.2f} ({event.verdict}){problem}", as_json)
        elif isinstance(event, ev.AttemptFinished):
            for finding in event.findings[:20]:
                _say(_finding_line(finding), as_json)
            if len(event.findings) > 20:
                _say(f"  … {len(event.findings) - 20} more finding(s)", as_json)
        elif isinstance(event, ev.Escalating):
            escalations.append({"from": event.from_lane, "to": event.to_lane, "reasons": list(event.reasons)})
            _say(f"escalation: {event.from_lane} -> {event.to_lane} ({', '.join(event.reasons)})", as_json)
        elif isinstance(event, ev.RunFinished):
            final = event
    return final, escalations


def run_routed(prepared: PreparedRun, as_json: bool, started: float) -> int:  # noqa: PLR0912 (the transcript and the result in two formats, clearer whole)
    """Run a prepared request, printing its transcript; the exit code. Closes the request's ledger."""
    req, loaded, repo = prepared.request, prepared.plan.loaded, prepared.plan.repo
    policy, decision = req.policy, req.decision
    ledger = req.ledger
    checks = list(getattr(policy.verification, decision.lane))
    if not as_json:
        for line in human_decision(decision):
            click.echo(line)
    loop = asyncio.new_event_loop()
    not_sandboxed: list[str] = []
    main = loop.create_task(_consume(req, as_json, not_sandboxed))
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, main.cancel)
    try:
        final, escalations = loop.run_until_complete(main)
    except asyncio.CancelledError:
        click.echo("route-agent: cancelled; the worktree was removed and nothing was applied", err=True)
        return 130
    finally:
        loop.close()
        if ledger is not None:
            ledger.close()
    if final is None:
        click.echo("route-agent: the run ended without a result", err=True)
        return EXIT_CONFIG
    elapsed = time.monotonic() - started
    ledger_state = _ledger_state(ledger)
    if ledger_state["reachable"] is False:
        # Plainly, on stderr in both modes: the run's result stands, its rows are safe in the spool.
        click.echo(f"route-agent: the team ledger became unreachable during the run ({ledger_state['problem']}); "
                   f"{ledger_state['spooled']} attempt row(s) are kept in {ledger_state['spool']} and will be written to it, "
                   "once and in order, the next time route-agent reaches it", err=True)
    lanes_used = [a["lane"] for a in final.attempts]
    if lanes_used and lanes_used[-1] != decision.lane:
        checks = list(getattr(policy.verification, lanes_used[-1]))
    if as_json:
        out = json_base(decision, checks)
        out.update(
            {
                "run_id": final.run_id,
                "attempts": list(final.attempts),
                "escalations": escalations,
                "result": final.result,
                "message": final.message,
                "findings": [f.as_dict() for f in final.findings],
                "cost_usd_estimate": round(final.cost_usd, 6),
                "latency_seconds": round(elapsed, 3),
                "policy_sources": list(loaded.sources),
                "policy_warnings": [str(w) for w in loaded.warnings],
                "sandboxed": not not_sandboxed,
                "not_sandboxed": sorted(set(not_sandboxed)),
                "base_commit": repo.head,
                "ledger": ledger_state,
            }
        )
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(f"verification: {verification_line(checks)}")
        click.echo(f"result: {final.result}")
        click.echo(f"cost_usd_estimate: {final.cost_usd:.2f}")
        click.echo(f"latency_seconds: {elapsed:.1f}")
        click.echo(f"message: {final.message}")
        for note in sorted(set(not_sandboxed)):
            click.echo(f"{note.replace('NOT sandboxed', 'not sandboxed', 1)}")
        if final.result == "pass":
            click.echo(f"run_id: {final.run_id} (apply the verified patch with: route-agent apply {final.run_id})")
    sys.stdout.flush()
    if final.result == "pass":
        return EXIT_OK
    if final.result == "fail":
        return EXIT_FAILED
    return EXIT_CONFIG


def _ledger_state(ledger: object) -> dict[str, Any]:
    """Where the run's rows went: `reachable` is False when a shared ledger failed and rows were spooled."""
    problem = getattr(ledger, "unreachable", None)
    spool = getattr(ledger, "spool_path", None)
    return {
        "location": str(getattr(ledger, "location", "")),
        "reachable": problem is None,
        "problem": problem,
        "spooled": int(getattr(ledger, "spooled", 0)),
        "spool": str(spool) if spool is not None else None,
    }
