"""One task run: lane call, patch in a worktree, verification, next route, ledger, repeat.

    async for event in run_task(request):
        ...

The run is async and cancellable: cancelling the task that iterates closes the HTTP stream, kills
the check processes and removes the worktree (finally blocks), and the ledger keeps a row for every
attempt that reached a verdict. The user's tree is never written here; an accepted patch is saved
for `route-agent apply RUN_ID` (or the editor's "Apply verified patch").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from route_agent.ledger.store import AttemptRow, Ledger
from route_agent.pipeline import adapters
from route_agent.pipeline import events as ev
from route_agent.policy.models import Policy
from route_agent.routing.decide import AttemptOutcome, Decision, Lane, NextStep, Router, next_route
from route_agent.signals.changeset import ChangeSet
from route_agent.signals.diffparse import DiffParseError, change_set_from_diff
from route_agent.verify.checks import CheckRun, ChecksReport, SandboxRequired, run_checks
from route_agent.verify.findings import Finding
from route_agent.verify.rescore import rescore_patch
from route_agent.verify.tamper import check_tamper
from route_agent.verify.verifier import VerifierResult, low_confidence, run_verifier
from route_agent.workspace.git import Repo
from route_agent.workspace.state import write_latest_verification


@dataclass
class RunRequest:
    repo: Repo
    policy: Policy
    router: Router
    decision: Decision
    brief: str
    change_set: ChangeSet
    ledger: Ledger | None = None
    environ: Mapping[str, str] | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    sandbox: str | None = None
    """Override of policy.verification.sandbox (auto, required, off)."""
    buffers: Mapping[str, str] = field(default_factory=dict)
    """An editor's unsaved documents (repository-relative path -> text): the change set and the prompt
    already use them, and the worktree starts from them too."""
    task_id: str | None = None
    """The ledger's task when this run continues another (an escalation the user started)."""
    first_attempt_no: int = 1
    """The number of this run's first attempt (2 for such an escalation)."""
    http_transport: Any = None
    """For tests: an httpx transport for the lane client."""
    carry_findings: Sequence[Finding] = ()
    """Findings of an earlier attempt (another run) for the first attempt's prompt, as an escalation
    carries them: the editor asks before escalating, then starts a strong run with these."""


@dataclass
class _Attempt:
    no: int
    lane: Lane
    model: str = ""
    passed: bool = False
    confidence: float | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: float = 0.0
    latency_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    result: str = "fail"
    failure_kind: str | None = None
    escalated: bool = False
    reasons: tuple[str, ...] = ()
    withheld: list[dict[str, Any]] = field(default_factory=list)
    findings_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.no,
            "lane": self.lane,
            "model": self.model,
            "passed": self.passed,
            "confidence": self.confidence,
            "checks": self.checks,
            "cost_usd": round(self.cost_usd, 6),
            "latency_seconds": round(self.latency_seconds, 3),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "result": self.result,
            "failure": self.failure_kind,
            "escalated": self.escalated,
            "escalation_reasons": list(self.reasons),
            "left_out_of_prompt": self.withheld,
        }


def _failure_kind(step: NextStep, tamper: bool, rejected: bool, failed_checks: list[str]) -> str | None:
    if step.action == "accept":
        return None
    if rejected:
        return "patch_rejected"
    if tamper:
        return "tamper"
    if "scope_creep" in step.reasons:
        return "scope_creep"
    if failed_checks:
        return "failed_" + failed_checks[0]
    return step.reasons[0] if step.reasons else "failed"


async def run_task(req: RunRequest) -> AsyncIterator[ev.Event]:
    """Run a routed task to pass, fail or error, yielding events; see the module docstring."""
    started = time.monotonic()
    policy = req.policy
    yield ev.Classified(req.decision, req.run_id)
    await asyncio.to_thread(adapters.prune_stale_worktrees, req.repo)
    attempts: list[_Attempt] = []
    all_findings: list[Finding] = []
    carry: list[Finding] = list(req.carry_findings)
    lane: Lane = req.decision.lane
    total_cost = 0.0
    client = adapters.make_client(policy, req)
    try:
        for attempt_no in range(req.first_attempt_no, req.first_attempt_no + policy.routing.max_attempts):
            spec = getattr(policy.models, lane)
            attempt = _Attempt(attempt_no, lane, spec.model)
            attempts.append(attempt)
            yield ev.AttemptStarted(attempt_no, lane, spec.model)
            prompt = await asyncio.to_thread(adapters.prompt_for, req, spec, carry)
            attempt.withheld = prompt.left_out
            queue: asyncio.Queue[ev.Event] = asyncio.Queue()
            on_delta = _Progress(queue, lane)
            call = asyncio.ensure_future(client.complete(lane, prompt.messages, on_delta=on_delta))
            try:
                while not call.done():
                    with contextlib.suppress(TimeoutError):
                        yield await asyncio.wait_for(queue.get(), 0.2)
                reply = call.result()
            except adapters.LaneError as exc:
                attempt.result, attempt.failure_kind = "error", f"lane_{exc.kind}"
                _record(req, attempt, passed=False)
                yield ev.RunFinished(
                    req.run_id,
                    "error",
                    f"{lane} lane ({spec.model}): {exc}",
                    tuple(a.as_dict() for a in attempts),
                    tuple(all_findings),
                    total_cost,
                    time.monotonic() - started,
                )
                return
            finally:
                if not call.done():
                    call.cancel()
                    with contextlib.suppress(BaseException):
                        await call
            attempt.model = reply.model
            attempt.cost_usd, attempt.latency_seconds = reply.cost_usd, reply.latency_seconds
            attempt.input_tokens, attempt.output_tokens = reply.input_tokens, reply.output_tokens
            total_cost += reply.cost_usd
            yield ev.LaneReplied(
                lane, reply.model, reply.input_tokens, reply.output_tokens, reply.cost_usd, reply.latency_seconds, reply.fallback_used
            )

            findings: list[Finding] = []
            rejected_reason: str | None = None
            report: ChecksReport | None = None
            verifier: VerifierResult | None = None
            tamper_reasons: tuple[str, ...] = ()
            scope: tuple[str, ...] = ()
            snapshot_only = False
            diff_text = ""
            worktree = None
            worktree_base = ""
            try:
                try:
                    worktree, diff_text = await asyncio.to_thread(adapters.apply_reply, req, reply.text)
                    worktree_base = worktree.base if worktree is not None else ""
                except adapters.PatchRejectedError as exc:
                    rejected_reason = str(exc)
                if rejected_reason is not None or worktree is None:
                    reason = rejected_reason or "no patch"
                    findings.append(Finding("patch", reason, "error", rule="patch_rejected", kind="patch"))
                    yield ev.PatchRejected(reason)
                else:
                    try:
                        patch_cs = change_set_from_diff(diff_text, base=req.repo.head)
                    except DiffParseError as exc:
                        patch_cs = ChangeSet()
                        findings.append(Finding("patch", str(exc), "error", rule="unparsable", kind="patch"))
                    yield ev.PatchApplied(patch_cs.paths)
                    tamper = check_tamper(patch_cs, req.router.matcher)
                    findings.extend(tamper.findings)
                    tamper_reasons = tamper.reasons
                    snapshot_only = tamper.snapshot_only
                    scope_report = rescore_patch(req.router, req.decision, patch_cs)
                    findings.extend(scope_report.findings)
                    scope = scope_report.new_conditions
                    checks = list(getattr(policy.verification, lane))
                    mode = req.sandbox or policy.verification.sandbox
                    queue_checks: asyncio.Queue[ev.Event] = asyncio.Queue()
                    yield ev.ChecksStarted(tuple(c.name for c in checks), mode)
                    checks_task = asyncio.ensure_future(
                        run_checks(
                            checks,
                            worktree.path,
                            main_root=req.repo.root,
                            main_git_dir=req.repo.git_dir,
                            sandbox_mode=mode,
                            run_timeout_s=policy.verification.run_timeout_s,
                            max_output_bytes=policy.verification.max_output_bytes,
                            environ=req.environ,
                            on_done=_check_done(queue_checks),
                        )
                    )
                    try:
                        while not checks_task.done():
                            with contextlib.suppress(TimeoutError):
                                yield await asyncio.wait_for(queue_checks.get(), 0.2)
                        while not queue_checks.empty():
                            yield queue_checks.get_nowait()
                        report = checks_task.result()
                    except SandboxRequired as exc:
                        findings.append(Finding("sandbox", str(exc), "error", rule="sandbox-required", kind="check"))
                    finally:
                        if not checks_task.done():
                            checks_task.cancel()
                            with contextlib.suppress(BaseException):
                                await checks_task
                    if report is not None:
                        findings.extend(report.findings)
                        attempt.checks = [
                            {
                                "name": r.name,
                                "status": r.status,
                                "exit_code": r.exit_code,
                                "duration_s": round(r.duration_s, 3),
                                "sandboxed": r.sandboxed,
                            }
                            for r in report.runs
                        ]
                    verifier = await _verify(req, client, lane, diff_text, findings, attempt.withheld)
                    if verifier is not None:
                        findings.extend(verifier.findings)
                        yield ev.VerifierDone(verifier.confidence, verifier.verdict, verifier.summary, verifier.valid)
            finally:
                if worktree is not None:
                    await asyncio.to_thread(adapters.remove_worktree, req.repo, worktree)

            failed_checks = [r.name for r in report.runs if not r.passed] if report else []
            if report is None and rejected_reason is None:
                failed_checks = ["sandbox"]
            test_failures = sum(
                1 for f in findings if f.kind == "check" and f.rule in ("failure", "error") and f.check in _test_checks(policy, lane)
            )
            labels = tuple(r.name for r in report.runs) if report else ()
            if snapshot_only:
                labels = (*labels, "snapshot-only")
            if lane == "fast" and rejected_reason is None and not labels and verifier is None:
                # Nothing looked at this patch: a cheap lane's word alone is not verification.
                labels = ("unverified",)
                findings.append(Finding("verification", "no check and no verifier is configured for the fast lane; the patch is unverified",
                                        "warning", rule="unverified", kind="check"))
            passed = rejected_reason is None and report is not None and report.passed
            outcome = AttemptOutcome(
                lane=lane,
                passed=passed,
                confidence=verifier.confidence if verifier else None,
                checks=labels,
                failed_checks=tuple(failed_checks),
                test_failures=test_failures,
                patch_rejected=rejected_reason is not None,
                tamper=tamper_reasons,
                scope_creep=scope,
            )
            step = next_route(outcome, policy, attempt_no)
            if report is not None and report.integrity:
                # An unsandboxed check changed the user's repository (hooks, config, refs, files): the
                # repository is hostile. Stop: another attempt would run the same code against the
                # changed baseline and could pass.
                step = NextStep("stop", lane, ("integrity",))
            attempt.passed = step.action == "accept"
            attempt.confidence = outcome.confidence
            attempt.result = "pass" if step.action == "accept" else ("patch_rejected" if rejected_reason else "fail")
            attempt.failure_kind = _failure_kind(step, bool(tamper_reasons), rejected_reason is not None, failed_checks)
            attempt.escalated = step.action == "escalate"
            attempt.reasons = step.reasons
            all_findings.extend(findings)
            attempt.findings_count = len(findings)
            _record(req, attempt, passed=attempt.passed)
            _remember(req, findings, attempt)
            yield ev.AttemptFinished(attempt.as_dict(), step.action, step.reasons, tuple(findings))
            if step.action == "accept":
                await asyncio.to_thread(adapters.save_run_for, req, worktree_base, diff_text, [a.as_dict() for a in attempts])
                yield ev.RunFinished(
                    req.run_id,
                    "pass",
                    "verified patch ready: route-agent apply " + req.run_id,
                    tuple(a.as_dict() for a in attempts),
                    tuple(findings),
                    total_cost,
                    time.monotonic() - started,
                    diff_text,
                )
                return
            if step.action == "escalate":
                failed = len(failed_checks) + len(tamper_reasons) + len(scope) + (1 if rejected_reason else 0)
                yield ev.Escalating(lane, step.lane, step.reasons, failed)
                carry = findings
                lane = step.lane
                continue
            break
        last = attempts[-1]
        message = f"{last.lane} lane failed: {', '.join(last.reasons) or 'verification failed'}; nothing was applied"
        yield ev.RunFinished(
            req.run_id, "fail", message, tuple(a.as_dict() for a in attempts), tuple(all_findings), total_cost, time.monotonic() - started
        )
    finally:
        await client.aclose()


class _Progress:
    """Counts streamed characters and queues a progress event at most four times a second."""

    def __init__(self, queue: asyncio.Queue[ev.Event], lane: str) -> None:
        self.queue, self.lane, self.chars, self.last = queue, lane, 0, 0.0

    def __call__(self, text: str) -> None:
        self.chars += len(text)
        now = time.monotonic()
        if now - self.last > 0.25:
            self.last = now
            self.queue.put_nowait(ev.LaneProgress(self.lane, self.chars))


def _check_done(queue: asyncio.Queue[ev.Event]) -> Callable[[CheckRun], None]:
    def done(run: CheckRun) -> None:
        queue.put_nowait(ev.CheckFinished(run.name, run.status, round(run.duration_s, 3)))

    return done


def _test_checks(policy: Policy, lane: str) -> set[str]:
    return {c.name for c in getattr(policy.verification, lane) if c.kind == "tests" or c.parser == "junit"}


async def _verify(req: RunRequest, client: Any, lane: Lane, diff: str, findings: list[Finding],
                  left_out: list[dict[str, Any]]) -> VerifierResult | None:
    policy = req.policy
    spec = policy.models.verifier
    if spec is None or lane not in policy.verifier.lanes:
        return None
    missing = adapters.missing_key(spec, req.environ)
    if missing is not None:
        return low_confidence(f"the verifier ({spec.model}) needs {missing}, which is not set")

    async def ask(messages: list[dict[str, str]]) -> str:
        reply = await client.complete("verifier", messages)
        # What the client's gate redacted or withheld from the verifier's request, for the attempt record.
        left_out.extend({"kind": "redacted", "path": "<verifier request>", "line": None, "rule": note}
                        for note in reply.redacted)
        return str(reply.text)

    return await run_verifier(ask, req.brief, diff, findings, policy.verifier.timeout_s)


def _record(req: RunRequest, attempt: _Attempt, *, passed: bool) -> None:
    if req.ledger is None:
        return
    req.ledger.record(
        AttemptRow(
            run_id=req.run_id,
            repo=str(req.repo.root),
            lane=attempt.lane,
            model=attempt.model,
            risk_score=req.decision.risk_score,
            passed=passed,
            attempt_no=attempt.no,
            task_id=req.task_id,
            brief=req.decision.signals.brief,
            signals=req.decision.signals.as_dict(),
            confidence=attempt.confidence,
            escalated=attempt.escalated,
            escalation_reason=",".join(attempt.reasons) or None,
            result=attempt.result,
            failure_kind=attempt.failure_kind,
            latency_s=attempt.latency_seconds,
            input_tokens=attempt.input_tokens,
            output_tokens=attempt.output_tokens,
            cost_usd=attempt.cost_usd,
            findings_count=attempt.findings_count,
        )
    )


def _remember(req: RunRequest, findings: list[Finding], attempt: _Attempt) -> None:
    tests = [f.message.split(":", 1)[0] for f in findings if f.kind == "check" and f.rule in ("failure", "error")]
    write_latest_verification(
        req.repo.root,
        {"run_id": req.run_id, "lane": attempt.lane, "passed": attempt.passed, "test_failures": len(tests), "failed_tests": tests[:50]},
    )

