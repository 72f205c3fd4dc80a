"""Events a task run emits. Front ends turn them into lines (CLI), progress and diagnostics (LSP).

Every event is a small frozen dataclass with a `kind`; `as_dict()` gives its JSON form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from route_agent.routing.decide import Decision
from route_agent.verify.findings import Finding


@dataclass(frozen=True)
class Event:
    kind: str = field(init=False, default="event")

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "decision"}
        return out


@dataclass(frozen=True)
class Classified(Event):
    decision: Decision
    run_id: str
    kind: str = field(init=False, default="classified")


@dataclass(frozen=True)
class AttemptStarted(Event):
    attempt_no: int
    lane: str
    model: str
    kind: str = field(init=False, default="attempt_started")


@dataclass(frozen=True)
class LaneProgress(Event):
    """Streaming progress: characters of reply received so far (sent at most a few times a second)."""

    lane: str
    chars: int
    kind: str = field(init=False, default="lane_progress")


@dataclass(frozen=True)
class AgentStep(Event):
    """One step of an agent-loop lane: the model's command and its result. `line` is the text front
    ends show (`step 3/40: python -m pytest -q -> exit 1, 0.8 s`)."""

    lane: str
    step: int
    max_steps: int
    step_kind: str
    """command, format (a reply without exactly one bash block) or submit"""
    command: str
    exit_code: int | None
    duration_s: float
    line: str
    kind: str = field(init=False, default="agent_step")


@dataclass(frozen=True)
class AgentFinished(Event):
    """An agent (built-in or external) ended: how, in how many steps, and its message."""

    lane: str
    executor: str
    status: str
    steps: int
    message: str
    kind: str = field(init=False, default="agent_finished")


@dataclass(frozen=True)
class LaneReplied(Event):
    lane: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_seconds: float
    fallback_used: bool = False
    kind: str = field(init=False, default="lane_replied")


@dataclass(frozen=True)
class WorktreePrepared(Event):
    """The repository's first worktree was checked out (once: later attempts and runs reset it)."""

    seconds: float
    kind: str = field(init=False, default="worktree_prepared")


@dataclass(frozen=True)
class PatchApplied(Event):
    files: tuple[str, ...]
    kind: str = field(init=False, default="patch_applied")


@dataclass(frozen=True)
class PatchRejected(Event):
    reason: str
    kind: str = field(init=False, default="patch_rejected")


@dataclass(frozen=True)
class ChecksStarted(Event):
    names: tuple[str, ...]
    sandbox: str
    sandboxed: bool = True
    """False when the checks run without the sandbox: every front end says so plainly."""
    note: str = ""
    dependencies: tuple[str, ...] = ()
    """The user's installed-dependency folders the checks see read-only (workspace/dependencies.py)."""
    kind: str = field(init=False, default="checks_started")


@dataclass(frozen=True)
class CheckFinished(Event):
    name: str
    status: str
    duration_s: float
    kind: str = field(init=False, default="check_finished")


@dataclass(frozen=True)
class VerifierDone(Event):
    confidence: float
    verdict: str
    summary: str
    valid: bool
    kind: str = field(init=False, default="verifier_done")


@dataclass(frozen=True)
class AttemptFinished(Event):
    attempt: dict[str, Any]
    action: Literal["accept", "escalate", "stop", "error"]
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...]
    failed: tuple[str, ...] = ()
    """What failed, by name: check runs that did not pass, then tamper, scope, patch and integrity findings."""
    kind: str = field(init=False, default="attempt_finished")


@dataclass(frozen=True)
class Escalating(Event):
    from_lane: str
    to_lane: str
    reasons: tuple[str, ...]
    failed_checks: int
    kind: str = field(init=False, default="escalating")


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: str
    result: Literal["pass", "fail", "error", "cancelled"]
    message: str
    attempts: tuple[dict[str, Any], ...]
    findings: tuple[Finding, ...]
    cost_usd: float
    latency_seconds: float
    patch: str | None = None
    """The accepted diff (result pass), ready for `route-agent apply RUN_ID`."""
    kind: str = field(init=False, default="run_finished")
