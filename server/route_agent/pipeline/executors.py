"""Lane executors that edit a worktree themselves: the built-in agent loop and external agents.

    out = AgentAttempt()
    async for event in agent_attempt(req, caller, lane, spec, carry, tried, attempt_no, out):
        ...   # AgentStep events, then AgentFinished
    # out.worktree (the run's leased worktree), out.diff_text, out.rejected (a finding when there is
    # no patch to verify), out.tried (for the next lane), tokens and cost

Each attempt starts from a clean worktree (the run's leased worktree, reset to the user's base plus
their uncommitted files: workspace/pool.py), so an
escalated attempt never inherits the failed one's edits: it gets the findings and a summary of what
was tried instead. The patch is `git diff` of the worktree against its base, modes and new files
included, and the caller verifies it exactly as a one-shot patch. The redacted transcript is kept in
the run directory (`runs/<run id>/agent/attempt-<n>.jsonl`, or `.log` for an external agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from route_agent.lanes.agent import AgentOutcome, AgentSession, AgentStep, format_step, run_agent
from route_agent.lanes.budget import BudgetGuard, TaskSpend
from route_agent.lanes.client import LaneClient
from route_agent.lanes.errors import LaneError
from route_agent.lanes.external import ExternalOutcome, ExternalRun, run_external_agent
from route_agent.lanes.relay import RelayCall
from route_agent.pipeline import events as ev
from route_agent.policy.models import ModelSpec
from route_agent.verify.findings import Finding
from route_agent.workspace.dependencies import DependencyDirs
from route_agent.workspace.git import WorkspaceError
from route_agent.workspace.patches import PatchRejected, worktree_diff
from route_agent.workspace.worktree import Worktree, run_path

if TYPE_CHECKING:
    from route_agent.pipeline.adapters import RunWorktree
    from route_agent.pipeline.run import RunRequest

__all__ = ["AgentAttempt", "agent_attempt", "finding_lines", "keep_transcripts", "pump", "transcript_dir"]


@dataclass
class AgentAttempt:
    executor: str = "builtin"
    worktree: Worktree | None = None
    diff_text: str = ""
    status: str = ""
    message: str = ""
    steps: int = 0
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_estimated: bool = False
    latency_seconds: float = 0.0
    tried: list[str] = field(default_factory=list)
    left_out: list[dict[str, Any]] = field(default_factory=list)
    rejected: Finding | None = None
    """Why there is no patch to verify (a limit, no change, no sandbox); None when there is one."""
    error: LaneError | None = None
    """A lane failure (not a budget) that ends the run as an error, as for a one-shot call."""
    cold_seconds: float | None = None
    """The seconds the repository's first worktree checkout took, when this attempt made it."""


async def pump(task: asyncio.Future[Any], queue: asyncio.Queue[ev.Event]) -> AsyncGenerator[ev.Event, None]:
    """Yield `queue`'s events while `task` runs, then the ones left; cancel `task` if abandoned.

    The caller reads `task.result()` afterwards. Use it under `contextlib.aclosing` so that closing
    the run cancels the task at once rather than when the generator is collected.
    """
    getter: asyncio.Future[ev.Event] | None = None
    try:
        while not task.done():
            # Whichever comes first: an event, or the task's end (no polling delay after it).
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait((task, getter), return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
            getter = None
        while not queue.empty():
            yield queue.get_nowait()
    finally:
        if getter is not None:
            getter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def changed_paths(diff_text: str) -> list[str]:
    """The paths a worktree diff names (`diff --git a/X b/Y`: both sides)."""
    out: list[str] = []
    for line in diff_text.split("\n"):
        if line.startswith("diff --git a/") and " b/" in line:
            left, _, right = line[len("diff --git a/"):].partition(" b/")
            out += [left, right]
    return list(dict.fromkeys(out))


def transcript_dir(run_id: str) -> Path:
    return run_path(run_id) / "agent"


def finding_lines(findings: Sequence[Finding]) -> list[str]:
    return [f"[{f.kind}] {f.check} {f.location()}: {f.message.splitlines()[0][:300] if f.message else ''}" for f in findings]


def keep_transcripts(run_id: str, save: Any) -> None:
    """Call `save()` (which replaces the run directory) and keep the agent transcripts across it."""
    source = transcript_dir(run_id)
    if not source.is_dir():
        save()
        return
    holding = Path(tempfile.mkdtemp(prefix="route-agent-transcripts-"))
    try:
        shutil.move(str(source), str(holding / "agent"))
        save()
        shutil.move(str(holding / "agent"), str(transcript_dir(run_id)))
    finally:
        shutil.rmtree(holding, ignore_errors=True)


async def agent_attempt(req: RunRequest, caller: Any, lane: str, spec: ModelSpec, carry: Sequence[Finding], tried: Sequence[str],
                        attempt_no: int, out: AgentAttempt, run_worktree: RunWorktree) -> AsyncGenerator[ev.Event, None]:
    """Run the lane's agent in the run's worktree, reset for it, yielding its steps; see the module docstring."""
    out.executor = spec.executor
    try:
        out.worktree, out.cold_seconds = await asyncio.to_thread(run_worktree.prepare)
    except (WorkspaceError, PatchRejected) as exc:
        out.rejected = Finding("agent", f"cannot prepare a worktree for the agent: {exc}", "error", rule="patch_rejected", kind="patch")
        return
    if out.cold_seconds is not None:
        yield ev.WorktreePrepared(out.cold_seconds)
    folder = transcript_dir(req.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    findings, summary = finding_lines(carry), list(tried)
    if spec.executor == "builtin":
        async with contextlib.aclosing(_builtin(req, caller, lane, spec, findings, summary, folder / f"attempt-{attempt_no}.jsonl",
                                                out, run_worktree.dependencies)) as steps:
            async for event in steps:
                yield event
    else:
        async with contextlib.aclosing(_external(req, caller, lane, spec, findings, summary,
                                                 folder / f"attempt-{attempt_no}-{spec.executor}.log", out,
                                                 run_worktree.dependencies)) as calls:
            async for event in calls:
                yield event
    yield ev.AgentFinished(lane, out.executor, out.status, out.steps, out.message)
    if out.rejected is not None or out.error is not None:
        return
    assert out.worktree is not None
    run_worktree.drop_dependency_links(out.worktree.path)  # an unsandboxed command's links are never part of the diff
    out.diff_text = await asyncio.to_thread(worktree_diff, out.worktree.path)
    run_worktree.note_written(changed_paths(out.diff_text))  # deleted when the run's lease ends
    if not out.diff_text.strip():
        out.rejected = Finding("agent", f"the {lane} lane's agent ({out.executor}) changed nothing", "error", rule="patch_rejected",
                               kind="patch")


async def _builtin(req: RunRequest, caller: Any, lane: str, spec: ModelSpec, findings: list[str], tried: list[str], transcript: Path,
                   out: AgentAttempt, dependencies: DependencyDirs) -> AsyncGenerator[ev.Event, None]:
    assert out.worktree is not None
    session = AgentSession(
        lane=lane, worktree=out.worktree.path, brief=req.brief, limits=req.policy.agent_limits(lane),
        max_context_tokens=spec.max_context_tokens, max_output_tokens=spec.max_output_tokens, repo_name=req.repo.root.name,
        findings=findings, tried=tried, environ=req.environ, max_output_bytes=req.policy.verification.max_output_bytes,
        allow_unsandboxed=req.allow_unsandboxed and req.policy.agent_limits(lane).allow_unsandboxed, transcript=transcript,
        dependencies=dependencies,
    )
    queue: asyncio.Queue[ev.Event] = asyncio.Queue()

    def on_step(step: AgentStep) -> None:
        queue.put_nowait(ev.AgentStep(step.lane, step.step, step.max_steps, step.kind, step.command, step.exit_code,
                                      round(step.duration_s, 3), format_step(step)))

    task: asyncio.Future[AgentOutcome] = asyncio.ensure_future(run_agent(session, caller, on_step))
    async with contextlib.aclosing(pump(task, queue)) as steps:
        async for event in steps:
            yield event
    outcome = task.result()
    out.status, out.message, out.steps = outcome.status, outcome.message, outcome.steps
    out.model = outcome.model or spec.model
    out.input_tokens, out.output_tokens, out.cost_usd = outcome.input_tokens, outcome.output_tokens, outcome.cost_usd
    out.latency_seconds = outcome.latency_seconds
    out.tried, out.left_out = outcome.tried, outcome.redactions
    if outcome.error is not None:
        out.error = outcome.error
    elif not outcome.submitted:
        out.rejected = _agent_stopped(lane, outcome.status, outcome.message)


async def _external(req: RunRequest, caller: Any, lane: str, spec: ModelSpec, findings: list[str], tried: list[str], log: Path,
                    out: AgentAttempt, dependencies: DependencyDirs) -> AsyncGenerator[ev.Event, None]:
    """Run an external agent; each model call it makes through the relay is a step event."""
    assert out.worktree is not None
    agent = req.policy.agents[spec.executor]
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[ev.Event] = asyncio.Queue()
    calls = 0

    def on_call(call: RelayCall) -> None:  # the relay's thread
        nonlocal calls
        if not (call.model_call or call.refused):
            return
        calls += 1
        line = (f"{spec.executor} model call {calls}: " + (f"refused: {call.refused}" if call.refused else
                f"{call.input_tokens} in / {call.output_tokens} out tokens{' (estimated)' if call.estimated else ''}, "
                f"${call.cost_usd:.4f}, {call.duration_s:.1f} s"))
        step = ev.AgentStep(lane, calls, 0, "model_call", spec.executor, None, round(call.duration_s, 3), line)
        loop.call_soon_threadsafe(queue.put_nowait, step)

    guard, task = (caller.guard, caller.task) if isinstance(caller, LaneClient) else (BudgetGuard(req.policy.budgets), TaskSpend())
    running = asyncio.ensure_future(run_external_agent(ExternalRun(
        name=spec.executor, agent=agent, spec=spec, worktree=out.worktree.path, brief=req.brief, findings=findings, tried=tried,
        environ=req.environ, allow_unsandboxed=req.allow_unsandboxed and req.policy.agent_limits(lane).allow_unsandboxed,
        guard=guard, task=task, on_call=on_call, dependencies=dependencies,
    )))
    async with contextlib.aclosing(pump(running, queue)) as steps:
        async for event in steps:
            yield event
    outcome: ExternalOutcome = running.result()
    metered = (f"{outcome.model_calls} model call(s) through the relay: {outcome.input_tokens} input and {outcome.output_tokens} "
               f"output tokens{' (estimated)' if outcome.cost_estimated else ''}, ${outcome.cost_usd:.4f}; "
               f"{outcome.relay_redactions} redaction(s) in its requests")
    log.write_text(f"$ {' '.join(outcome.argv)}\n{outcome.message}\n{metered}\n\n{outcome.output}", "utf-8")
    out.status, out.message, out.model = outcome.status, outcome.message, spec.model
    out.latency_seconds = outcome.duration_s
    out.steps, out.input_tokens, out.output_tokens, out.cost_usd = (outcome.model_calls, outcome.input_tokens, outcome.output_tokens,
                                                                    outcome.cost_usd)
    out.cost_estimated = outcome.cost_estimated
    out.left_out = outcome.redactions
    out.tried = [f"{spec.executor} agent -> {outcome.status}" + (f" (exit {outcome.exit_code})" if outcome.exit_code is not None else "")]
    if not outcome.ok:
        tail = outcome.output.strip().splitlines()[-5:]
        detail = (": " + " | ".join(tail)) if tail else ""
        out.rejected = _agent_stopped(lane, outcome.status, f"{outcome.message}{detail}")


def _agent_stopped(lane: str, status: str, message: str) -> Finding:
    """The finding for an agent (built-in or external) that stopped without a patch to verify."""
    rule = "sandbox-required" if status == "sandbox_unavailable" else f"agent_{status}"
    return Finding("agent", f"{lane} lane agent: {message}"[:2000], "error", rule=rule, kind="patch")
