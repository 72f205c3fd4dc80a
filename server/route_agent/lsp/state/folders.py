"""One workspace folder: its repository, policy, and the latest risk snapshot.

`compute_snapshot` is synchronous (git, files) and runs in a worker thread; the event loop only
swaps the finished snapshot in, so hover and code actions read the latest one without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from route_agent.lsp.settings import Settings
from route_agent.pipeline.prepare import RunSettings, plan_workspace
from route_agent.policy import LoadedPolicy, PolicyCache, PolicyError
from route_agent.routing import Router
from route_agent.routing.decide import Decision
from route_agent.signals import ChangeSet, Evidence
from route_agent.workspace.approvals import repo_policy_needing_approval
from route_agent.workspace.git import Repo, WorkspaceError

DRIFT_SIGNALS = ("auth_code", "schema_change")


@dataclass(frozen=True, slots=True)
class DriftHit:
    """Content detectors found `signal` code in `path`, and no path rule of that class covers it."""

    signal: str
    path: str
    line: int
    detector: str
    suggested_glob: str


@dataclass(frozen=True)
class RiskSnapshot:
    decision: Decision
    change_set: ChangeSet
    policy: LoadedPolicy
    repo: Repo
    drift: tuple[DriftHit, ...]
    computed_at: float
    generation: int
    router: Router
    policy_approved: bool | None = None
    """Whether the repository policy's commands are approved; None when it declares none or the
    policy in force is the user's own (`policyPath`)."""

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(self.change_set.paths)


@dataclass
class FolderState:
    uri: str
    root: Path
    name: str
    snapshot: RiskSnapshot | None = None
    error: str | None = None
    policy_error: PolicyError | None = None
    refresh_pending: bool = False
    refresh_running: bool = False
    rerun: bool = False
    generation: int = 0
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    policy_cache: PolicyCache = field(default_factory=PolicyCache)
    settings: Settings | None = None
    """The client's settings for this folder (`workspace/configuration` with its `scopeUri`); the
    server's own when None. Read them with `RouteAgentServer.settings_for`."""

    @property
    def refreshing(self) -> bool:
        return self.refresh_pending or self.refresh_running

    def relative(self, path: str | Path) -> str | None:
        """Repository-relative POSIX path, or None when `path` is outside this folder."""
        try:
            rel = Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return None
        return PurePosixPath(*rel.parts).as_posix() if rel.parts else None


def suggest_glob(path: str) -> str:
    """`services/identity/tokens.py` -> `services/identity/**`; a top-level file names itself."""
    parent = PurePosixPath(path).parent
    return f"{parent.as_posix()}/**" if parent.parts else path


def find_drift(decision: Decision, router: Router) -> tuple[DriftHit, ...]:
    """Content hits for auth/schema code in paths that no path rule of that class covers."""
    hits: list[DriftHit] = []
    seen: set[tuple[str, str]] = set()
    for contribution in decision.contributions:
        if contribution.signal not in DRIFT_SIGNALS:
            continue
        for ev in contribution.evidence:
            if not _is_content_evidence(ev) or ev.path is None or ev.line is None:
                continue
            key = (contribution.signal, ev.path)
            if key in seen:
                continue
            classes = {m.path_class for m in router.matcher.classify(ev.path)}
            if contribution.signal in classes:
                continue
            seen.add(key)
            hits.append(DriftHit(contribution.signal, ev.path, ev.line, ev.detail or "detector", suggest_glob(ev.path)))
    return tuple(hits)


def _is_content_evidence(ev: Evidence) -> bool:
    return ev.path not in (None, "brief") and ev.line is not None and not (ev.detail or "").startswith("matches path rule")


def compute_snapshot(
    root: Path,
    buffers: Mapping[str, str],
    policy_cache: PolicyCache,
    explicit_policy: Path | None,
    requested_lane: Literal["auto", "fast", "strong"],
    generation: int,
    previous: RiskSnapshot | None = None,
    ledger_location: str | None = None,
) -> RiskSnapshot:
    """Git, policy and scoring for one folder, as a run would plan them (pipeline.prepare), with an
    empty brief. Synchronous; raises WorkspaceError or PolicyError.

    The router (compiled path rules, their per-path cache) is reused while the policy is the same
    object, which the policy cache guarantees until a policy file changes. The approval state of a
    repository's commands is read here, once per snapshot, not by every reader.
    """
    settings = RunSettings(root=root, brief="", lane=requested_lane, explicit_policy=explicit_policy, buffers=buffers,
                           ledger_location=ledger_location, policy_cache=policy_cache)
    plan = plan_workspace(settings, previous.router if previous is not None else None, lane_fallback=True)
    approved: bool | None = None
    if explicit_policy is None:
        status = repo_policy_needing_approval(plan.repo.root, plan.loaded.policy, policy_cache.layer)
        approved = None if status is None else status.approved
    return RiskSnapshot(plan.decision, plan.change_set, plan.loaded, plan.repo, find_drift(plan.decision, plan.router),
                        time.monotonic(), generation, plan.router, approved)


__all__ = [
    "DriftHit",
    "FolderState",
    "PolicyError",
    "RiskSnapshot",
    "WorkspaceError",
    "compute_snapshot",
    "find_drift",
    "suggest_glob",
]
