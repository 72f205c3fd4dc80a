"""One task run: lane call, patch in a worktree, verification, next route, ledger, repeat.

    async for event in run_task(request):
        ...

The run is async and cancellable: cancelling the task that iterates closes the HTTP stream, kills
the check processes and releases the run's leased worktree (finally blocks), and the ledger keeps a row for every
attempt that reached a verdict. The user's tree is never written here; an accepted patch is saved
for `route-agent apply RUN_ID` (or the editor's "Apply verified patch").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from route_agent.lanes.errors import LaneError
from route_agent.ledger.store import AttemptRow, Ledger
from route_agent.pipeline import adapters, executors
from route_agent.pipeline import events as ev
from route_agent.pipeline.lane_call import LaneCaller, LaneReply, call_lane, open_lane_caller
from route_agent.policy.models import Policy
from route_agent.routing.decide import AttemptOutcome, Decision, Lane, NextStep, Router, next_route
from route_agent.signals.changeset import ChangeSet
from route_agent.signals.diffparse import DiffParseError, change_set_from_diff
from route_agent.verify.checks import CheckRun, ChecksReport, SandboxRequired, run_checks, sandbox_plan
from route_agent.verify.findings import Finding
from route_agent.verify.rescore import rescore_patch
from route_agent.verify.tamper import check_tamper
from route_agent.verify.verifier import VerifierResult, low_confidence, run_verifier
from route_agent.workspace.approvals import unsandboxed_accepted
from route_agent.workspace.dependencies import NO_DEPENDENCY_DIRS, DependencyDirs
from route_agent.workspace.git import Repo, StatusListing
from route_agent.workspace.state import write_latest_verification
from route_agent.workspace.worktree import StagedRun, Worktree


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
    lane_caller: LaneCaller | None = None
    """Calls the lanes and the verifier instead of the policy's HTTP client (tests, other executors);
    the run closes it when it ends."""
    carry_findings: Sequence[Finding] = ()
    """Findings of an earlier attempt (another run) for the first attempt's prompt, as an escalation
    carries them: the editor asks before escalating, then starts a strong run with these."""
    listing: StatusListing | None = None
    """The paths the change set's `git status` named (workspace.git.collect_changes): the first
    attempt's worktree copies them instead of walking the user's tree again, while the listing is
    fresh (adapters.LISTING_FRESH_S); later attempts, or a run started later, ask git again."""
    allow_unsandboxed: bool = False
    """Whether the user's own policy (never a repository's) opted in to agent commands without
    bubblewrap; the front end decides (policy.approval.unsandboxed_opt_in_trusted), and the lane's
    `agent.allow_unsandboxed` must say so too."""


@dataclass
class _Attempt:
    no: int
    lane: Lane
    model: str = ""
    passed: bool = False
    confidence: float | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    cost_usd: float = 0.0
    cost_estimated: bool = False
    latency_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    result: str = "fail"
    failure_kind: str | None = None
    escalated: bool = False
    reasons: tuple[str, ...] = ()
    withheld: list[dict[str, Any]] = field(default_factory=list)
    findings_count: int = 0
    executor: str = "oneshot"
    steps: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    verifier: dict[str, Any] | None = None
    """The verifier's verdict, confidence and summary (None when it did not run)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.no,
            "lane": self.lane,
            "model": self.model,
            "passed": self.passed,
            "confidence": self.confidence,
            "checks": self.checks,
            "cost_usd": round(self.cost_usd, 6),
            "cost_estimated": self.cost_estimated,
            "latency_seconds": round(self.latency_seconds, 3),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "result": self.result,
            "failure": self.failure_kind,
            "escalated": self.escalated,
            "escalation_reasons": list(self.reasons),
            "left_out_of_prompt": self.withheld,
            "executor": self.executor,
            "steps": self.steps,
            "findings": self.findings,
            "verifier": self.verifier,
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


async def run_task(req: RunRequest) -> AsyncIterator[ev.Event]:  # noqa: PLR0915 (the attempt loop reads as the flow; its pieces are _lane_attempt, _verify_patch, _judge)
    """Run a routed task to pass, fail or error, yielding events; see the module docstring.

    Each attempt is three pieces: the lane call (`_lane_attempt`), the verification of its patch
    (`_verify_patch`) and the judgement of the outcome (`_judge`), which names the next step.
    """
    run = _RunState(req)
    yield ev.Classified(req.decision, req.run_id)
    # Stale worktrees and pool slots go while this run starts (the pool's lock keeps them apart).
    housekeeping = asyncio.ensure_future(asyncio.to_thread(adapters.prune_worktrees, req))
    carry: list[Finding] = list(req.carry_findings)
    tried: list[str] = []
    lane: Lane = req.decision.lane
    try:
        worktree, caller = await _worktree_and_caller(req, lane)
    except BaseException:
        await asyncio.wait([housekeeping])
        raise
    verification = _Verification()  # each attempt's; the last one's staged patch is dropped at the end unless kept
    try:
        for attempt_no in range(req.first_attempt_no, req.first_attempt_no + req.policy.routing.max_attempts):
            spec = getattr(req.policy.models, lane)
            attempt = _Attempt(attempt_no, lane, spec.model)
            run.attempts.append(attempt)
            yield ev.AttemptStarted(attempt_no, lane, spec.model)
            attempt.executor = spec.executor
            verification = _Verification()
            if spec.executor == "oneshot":
                worktree.start_prepare()  # the reset runs while the prompt is built and the model answers
                call = _LaneCall()
                async with contextlib.aclosing(_lane_attempt(req, caller, attempt, carry, call, run.tracked)) as lane_events:
                    async for event in lane_events:
                        yield event
                if call.reply is None:
                    run.total_cost += attempt.cost_usd
                    _record(req, attempt, passed=False)
                    yield run.finished("error", f"{lane} lane ({spec.model}): {call.error}", run.all_findings)
                    return
                run.total_cost += call.reply.cost_usd
                patch_events = _verify_patch(req, caller, worktree, attempt, call.reply.text, verification)
            else:
                # The lane is an agent: it edits the run's worktree (reset for it) itself, and its diff is
                # verified the same way.
                agent = executors.AgentAttempt()
                async with contextlib.aclosing(_agent_attempt(req, caller, worktree, attempt, carry, tried, agent)) as agent_events:
                    async for event in agent_events:
                        yield event
                run.total_cost += agent.cost_usd
                tried = agent.tried
                if agent.error is not None:
                    attempt.result, attempt.failure_kind = "error", f"lane_{agent.error.kind}"
                    _record(req, attempt, passed=False)
                    yield run.finished("error", f"{lane} lane ({spec.model}): {agent.error}", run.all_findings)
                    return
                patch_events = _verify_patch(req, caller, worktree, attempt, "", verification, agent)
            async with contextlib.aclosing(patch_events) as check_events:
                async for event in check_events:
                    yield event
            step = _judge(req, attempt, verification)
            findings = verification.findings
            run.all_findings.extend(findings)
            _record(req, attempt, passed=attempt.passed)
            _remember(req, findings, attempt)
            yield ev.AttemptFinished(attempt.as_dict(), step.action, step.reasons, tuple(findings), _failed_names(attempt, findings))
            if step.action == "accept":
                staged = await verification.take_staged()
                save = functools.partial(staged.keep, adapters.run_meta(req, [a.as_dict() for a in run.attempts]))
                await asyncio.to_thread(executors.keep_transcripts, req.run_id, save)
                yield run.finished("pass", "verified patch ready: route-agent apply " + req.run_id, findings, verification.diff_text)
                return
            await verification.discard_staged()
            if step.action != "escalate":
                break
            yield ev.Escalating(lane, step.lane, step.reasons, verification.failed_count())
            carry = findings
            lane = step.lane
        last = run.attempts[-1]
        message = f"{last.lane} lane failed: {', '.join(last.reasons) or 'verification failed'}; nothing was applied"
        yield run.finished("fail", message, run.all_findings)
    finally:
        await verification.discard_staged()  # a run cancelled or failed between staging and judging
        await asyncio.to_thread(worktree.release)
        await caller.aclose()
        await housekeeping


async def _worktree_and_caller(req: RunRequest, lane: Lane) -> tuple[adapters.RunWorktree, LaneCaller]:
    """The run's worktree, its reset already started when the first lane is one-shot (it runs while
    the lane client is made and the prompt built), and the lane caller."""
    worktree = adapters.RunWorktree(req)
    if getattr(req.policy.models, lane).executor == "oneshot":
        worktree.start_prepare()
    try:
        return worktree, open_lane_caller(req.policy, req.environ, req.ledger, req.lane_caller)
    except BaseException:
        await asyncio.to_thread(worktree.release)
        raise


@dataclass
class _RunState:
    """What a run accumulates across attempts, and the closing event it builds from it."""

    req: RunRequest
    started: float = field(default_factory=time.monotonic)
    attempts: list[_Attempt] = field(default_factory=list)
    all_findings: list[Finding] = field(default_factory=list)
    total_cost: float = 0.0
    tracked: adapters.TrackedListing = field(init=False)
    """The user's tracked paths, listed once for every attempt's prompt."""

    def __post_init__(self) -> None:
        self.tracked = adapters.TrackedListing(self.req.repo)

    def finished(
        self, result: Literal["pass", "fail", "error"], message: str, findings: Sequence[Finding], patch: str | None = None
    ) -> ev.RunFinished:
        attempts = tuple(a.as_dict() for a in self.attempts)
        elapsed = time.monotonic() - self.started
        return ev.RunFinished(self.req.run_id, result, message, attempts, tuple(findings), self.total_cost, elapsed, patch)


@dataclass
class _LaneCall:
    """The outcome of one lane call: a reply, or the lane error that ended the run."""

    reply: LaneReply | None = None
    error: LaneError | None = None


async def _lane_attempt(
    req: RunRequest, caller: LaneCaller, attempt: _Attempt, carry: Sequence[Finding], out: _LaneCall, tracked: adapters.TrackedListing
) -> AsyncGenerator[ev.Event, None]:
    """Build the prompt and call the lane, yielding progress; the reply (or the error) lands in `out`."""
    lane = attempt.lane
    spec = getattr(req.policy.models, lane)
    prompt = await asyncio.to_thread(adapters.prompt_for, req, spec, carry, tracked)
    attempt.withheld = prompt.left_out
    queue: asyncio.Queue[ev.Event] = asyncio.Queue()
    call = asyncio.ensure_future(call_lane(caller, lane, prompt.messages, _Progress(queue, lane)))
    try:
        async with contextlib.aclosing(executors.pump(call, queue)) as progress:
            async for event in progress:
                yield event
        reply = call.result()
    except adapters.LaneError as exc:
        attempt.result, attempt.failure_kind = "error", f"lane_{exc.kind}"
        # A call that failed after content arrived was paid for: it is booked at what was received.
        attempt.cost_usd, attempt.cost_estimated = exc.cost_usd, exc.cost_estimated
        attempt.input_tokens, attempt.output_tokens = exc.input_tokens, exc.output_tokens
        out.error = exc
        return
    out.reply = reply
    attempt.model = reply.model
    attempt.cost_usd, attempt.latency_seconds = reply.cost_usd, reply.latency_seconds
    attempt.cost_estimated = reply.cost_estimated
    attempt.input_tokens, attempt.output_tokens = reply.input_tokens, reply.output_tokens
    yield ev.LaneReplied(
        lane, reply.model, reply.input_tokens, reply.output_tokens, reply.cost_usd, reply.latency_seconds, reply.fallback_used
    )


async def _agent_attempt(
    req: RunRequest, caller: LaneCaller, run_worktree: adapters.RunWorktree, attempt: _Attempt, carry: Sequence[Finding],
    tried: Sequence[str], out: executors.AgentAttempt,
) -> AsyncGenerator[ev.Event, None]:
    """Run the lane's agent (built-in loop or external) in the run's worktree, reset for it, yielding
    its steps; the worktree, its diff and what the agent spent land in `out` and `attempt`."""
    spec = getattr(req.policy.models, attempt.lane)
    async with contextlib.aclosing(executors.agent_attempt(req, caller, attempt.lane, spec, carry, tried, attempt.no, out,
                                                           run_worktree)) as steps:
        async for event in steps:
            yield event
    attempt.model, attempt.steps = out.model or spec.model, out.steps
    attempt.cost_usd, attempt.latency_seconds = out.cost_usd, out.latency_seconds
    attempt.input_tokens, attempt.output_tokens = out.input_tokens, out.output_tokens
    attempt.cost_estimated = out.cost_estimated
    attempt.withheld = out.left_out


@dataclass
class _Verification:
    """What verifying one attempt's patch found; `_judge` reads it."""

    findings: list[Finding] = field(default_factory=list)
    rejected_reason: str | None = None
    report: ChecksReport | None = None
    verifier: VerifierResult | None = None
    tamper_reasons: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()
    snapshot_only: bool = False
    diff_text: str = ""
    worktree_base: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    staged: asyncio.Future[StagedRun] | None = None
    """The patch's stored form, written while the checks run (kept only if the attempt is accepted)."""

    def stage(self, req: RunRequest) -> None:
        self.staged = asyncio.ensure_future(asyncio.to_thread(adapters.stage_run_for, req, self.worktree_base, self.diff_text))

    async def take_staged(self) -> StagedRun:
        """The staged run (what staging raised, if it failed): an accepted attempt's patch was applied,
        so it was staged."""
        staged, self.staged = self.staged, None
        if staged is None:
            raise RuntimeError("an accepted attempt has no staged patch")
        return await staged

    async def discard_staged(self) -> None:
        staged, self.staged = self.staged, None
        if staged is None:
            return
        await asyncio.wait([staged])
        if not staged.cancelled() and staged.exception() is None:
            await asyncio.to_thread(staged.result().discard)

    def failed_checks(self) -> list[str]:
        if self.report is not None:
            return [r.name for r in self.report.runs if not r.passed]
        return ["sandbox"] if self.rejected_reason is None else []

    def failed_count(self) -> int:
        rejected = 1 if self.rejected_reason else 0
        return len(self.failed_checks()) + len(self.tamper_reasons) + len(self.scope) + rejected


async def _verify_patch(
    req: RunRequest, caller: LaneCaller, run_worktree: adapters.RunWorktree, attempt: _Attempt, reply_text: str, out: _Verification,
    agent: executors.AgentAttempt | None = None,
) -> AsyncGenerator[ev.Event, None]:
    """Apply the reply's patch in the run's worktree, reset for this attempt (or take the worktree
    the agent edited), and verify it there (tamper, scope, checks, verifier), yielding events. The
    worktree stays leased to the run; the next attempt resets it."""
    lane = attempt.lane
    worktree: Worktree | None = None
    cold_seconds: float | None = None
    if agent is not None:
        worktree, out.diff_text, cold_seconds = agent.worktree, agent.diff_text, agent.cold_seconds
        out.worktree_base = worktree.base if worktree is not None else ""
        if agent.rejected is not None:
            out.rejected_reason = agent.rejected.message
            out.findings.append(agent.rejected)
            yield ev.PatchRejected(out.rejected_reason)
            return
    else:
        try:
            applied, out.diff_text, cold_seconds = await asyncio.to_thread(adapters.apply_reply, req, run_worktree, reply_text)
            worktree, out.worktree_base = applied, applied.base
        except adapters.PatchRejectedError as exc:
            out.rejected_reason = str(exc)
    if out.rejected_reason is not None or worktree is None:
        reason = out.rejected_reason or "no patch"
        out.findings.append(Finding("patch", reason, "error", rule="patch_rejected", kind="patch"))
        yield ev.PatchRejected(reason)
        return
    if cold_seconds is not None and agent is None:
        yield ev.WorktreePrepared(cold_seconds)
    out.stage(req)  # the patch's stored form is written while the checks run
    yield ev.PatchApplied(_inspect_patch(req, out))
    async with contextlib.aclosing(_run_lane_checks(req, lane, worktree.path, out, run_worktree.dependencies)) as check_events:
        async for event in check_events:
            yield event
    out.verifier = await _verify(req, caller, lane, out.diff_text, out.findings, attempt.withheld)
    if out.verifier is not None:
        out.findings.extend(out.verifier.findings)
        yield ev.VerifierDone(out.verifier.confidence, out.verifier.verdict, out.verifier.summary, out.verifier.valid)


def unsandboxed_message(root: Path, note: str) -> str:
    return (f"checks would run {note}: the repository's checks, its tests and its conftest would run as you, able to read the keys "
            f"your shell exported; nothing was run. Install bubblewrap, or accept unsandboxed execution for this repository once: "
            f"route-agent policy approve --unsandboxed --workspace {root}")


def unsandboxed_refusal(root: Path, policy: Policy, sandbox: str | None) -> str | None:
    """Why a run must not start (before any model is paid for): its checks would run without the
    sandbox in a repository whose unsandboxed execution the user has not accepted; else None."""
    mode = sandbox or policy.verification.sandbox
    # Repository code runs in checks, and in an agent's commands (any executor but oneshot).
    runs_code = bool(policy.verification.fast or policy.verification.strong) or any(
        getattr(policy.models, lane).executor != "oneshot" for lane in ("fast", "strong"))
    if mode == "required" or not runs_code:
        return None
    info, note = sandbox_plan(mode)
    if info is not None or unsandboxed_accepted(root):
        return None
    return unsandboxed_message(root, note)


def _inspect_patch(req: RunRequest, out: _Verification) -> tuple[str, ...]:
    """Parse the applied diff and look for tampering and scope creep; returns the patch's paths."""
    try:
        patch_cs = change_set_from_diff(out.diff_text, base=req.repo.head)
    except DiffParseError as exc:
        patch_cs = ChangeSet()
        out.findings.append(Finding("patch", str(exc), "error", rule="unparsable", kind="patch"))
    tamper = check_tamper(patch_cs, req.router.matcher)
    out.findings.extend(tamper.findings)
    out.tamper_reasons = tamper.reasons
    out.snapshot_only = tamper.snapshot_only
    scope_report = rescore_patch(req.router, req.decision, patch_cs)
    out.findings.extend(scope_report.findings)
    out.scope = scope_report.new_conditions
    return patch_cs.paths


async def _run_lane_checks(req: RunRequest, lane: Lane, worktree_path: Path, out: _Verification,
                           dependencies: DependencyDirs = NO_DEPENDENCY_DIRS) -> AsyncGenerator[ev.Event, None]:
    """Run the lane's checks in the worktree, yielding each as it finishes; the report lands in `out`.
    The user's installed-dependency folders are visible to them read-only; a refused one is a warning."""
    policy = req.policy
    checks = list(getattr(policy.verification, lane))
    if checks:
        out.findings.extend(Finding("dependencies", message, "warning", rule="dependency-dir-refused", kind="check")
                            for message in dependencies.refused)
    mode = req.sandbox or policy.verification.sandbox
    queue: asyncio.Queue[ev.Event] = asyncio.Queue()
    info, note = await asyncio.to_thread(sandbox_plan, mode)
    yield ev.ChecksStarted(tuple(c.name for c in checks), mode, sandboxed=info is not None or not checks, note=note,
                           dependencies=dependencies.names if checks else ())
    if checks and info is None and mode != "required" and not unsandboxed_accepted(req.repo.root):
        out.findings.append(Finding("sandbox", unsandboxed_message(req.repo.root, note), "error", rule="unsandboxed-not-accepted",
                                    kind="check"))
        return
    task = asyncio.ensure_future(
        run_checks(
            checks,
            worktree_path,
            main_root=req.repo.root,
            main_git_dir=req.repo.git_dir,
            sandbox_mode=mode,
            run_timeout_s=policy.verification.run_timeout_s,
            max_output_bytes=policy.verification.max_output_bytes,
            environ=req.environ,
            on_done=_check_done(queue),
            dependencies=dependencies,
        )
    )
    try:
        async with contextlib.aclosing(executors.pump(task, queue)) as finished:
            async for event in finished:
                yield event
        out.report = task.result()
    except SandboxRequired as exc:
        out.findings.append(Finding("sandbox", str(exc), "error", rule="sandbox-required", kind="check"))
        return
    out.findings.extend(out.report.findings)
    out.checks = [
        {"name": r.name, "status": r.status, "exit_code": r.exit_code, "duration_s": round(r.duration_s, 3), "sandboxed": r.sandboxed}
        for r in out.report.runs
    ]


def _judge(req: RunRequest, attempt: _Attempt, v: _Verification) -> NextStep:
    """Turn what verification found into the attempt's outcome and the next step; fills `attempt`."""
    policy, lane = req.policy, attempt.lane
    report = v.report
    failed_checks = v.failed_checks()
    test_failures = sum(
        1 for f in v.findings if f.kind == "check" and f.rule in ("failure", "error") and f.check in _test_checks(policy, lane)
    )
    labels = tuple(r.name for r in report.runs) if report else ()
    if v.snapshot_only:
        labels = (*labels, "snapshot-only")
    if report is not None and any(r.no_tests for r in report.runs):
        labels = (*labels, "unverified")  # a test check that ran no test is weak: never a pass on its own
    if lane == "fast" and v.rejected_reason is None and not labels and v.verifier is None:
        # Nothing looked at this patch: a cheap lane's word alone is not verification.
        labels = ("unverified",)
        v.findings.append(Finding("verification", "no check and no verifier is configured for the fast lane; the patch is unverified",
                                  "warning", rule="unverified", kind="check"))
    outcome = AttemptOutcome(
        lane=lane,
        passed=v.rejected_reason is None and report is not None and report.passed,
        confidence=v.verifier.confidence if v.verifier else None,
        checks=labels,
        failed_checks=tuple(failed_checks),
        test_failures=test_failures,
        patch_rejected=v.rejected_reason is not None,
        tamper=v.tamper_reasons,
        scope_creep=v.scope,
    )
    step = next_route(outcome, policy, attempt.no, req.decision.plan_name)
    if any(f.rule == "unsandboxed-not-accepted" for f in v.findings):
        step = NextStep("stop", lane, ("unsandboxed",))  # another lane would be refused the same way
    if report is not None and report.integrity:
        # An unsandboxed check changed the user's repository (hooks, config, refs, files): the
        # repository is hostile. Stop: another attempt would run the same code against the
        # changed baseline and could pass.
        step = NextStep("stop", lane, ("integrity",))
    attempt.checks = v.checks
    attempt.passed = step.action == "accept"
    attempt.confidence = outcome.confidence
    attempt.result = "pass" if step.action == "accept" else ("patch_rejected" if v.rejected_reason else "fail")
    attempt.failure_kind = _failure_kind(step, bool(v.tamper_reasons), v.rejected_reason is not None, failed_checks)
    attempt.escalated = step.action == "escalate"
    attempt.reasons = step.reasons
    attempt.findings_count = len(v.findings)
    attempt.findings = [f.as_dict() for f in v.findings[:50]]
    if v.verifier is not None:
        attempt.verifier = {"verdict": v.verifier.verdict, "confidence": v.verifier.confidence,
                            "summary": v.verifier.summary, "valid": v.verifier.valid}
    return step


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


FAILING_FINDING_KINDS = ("tamper", "scope", "patch", "integrity")
"""Finding kinds that fail an attempt by themselves (besides failed check runs)."""


def _failed_names(attempt: _Attempt, findings: Sequence[Finding]) -> tuple[str, ...]:
    names = [str(c.get("name")) for c in attempt.checks if c.get("status") != "pass"]
    for finding in findings:
        if finding.kind in FAILING_FINDING_KINDS and finding.check not in names:
            names.append(finding.check)
    return tuple(names)


def _test_checks(policy: Policy, lane: str) -> set[str]:
    return {c.name for c in getattr(policy.verification, lane) if c.kind == "tests" or c.parser == "junit"}


async def _verify(req: RunRequest, client: LaneCaller, lane: Lane, diff: str, findings: list[Finding],
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
            signals={**req.decision.signals.as_dict(), **({"lane_override": "fast"} if req.decision.lane_override else {})},
            confidence=attempt.confidence,
            escalated=attempt.escalated,
            escalation_reason=",".join(attempt.reasons) or None,
            result=attempt.result,
            failure_kind=attempt.failure_kind,
            latency_s=attempt.latency_seconds,
            input_tokens=attempt.input_tokens,
            output_tokens=attempt.output_tokens,
            cost_usd=attempt.cost_usd,
            cost_estimated=attempt.cost_estimated,
            findings_count=attempt.findings_count,
            plan=req.decision.plan_name,
            predicted=req.decision.plan.prediction.as_dict() if req.decision.plan and req.decision.plan.prediction else {},
            executor=attempt.executor,
            steps=attempt.steps,
        )
    )


def _remember(req: RunRequest, findings: list[Finding], attempt: _Attempt) -> None:
    tests = [f.message.split(":", 1)[0] for f in findings if f.kind == "check" and f.rule in ("failure", "error")]
    write_latest_verification(
        req.repo.root,
        {"run_id": req.run_id, "lane": attempt.lane, "passed": attempt.passed, "test_failures": len(tests), "failed_tests": tests[:50]},
    )

