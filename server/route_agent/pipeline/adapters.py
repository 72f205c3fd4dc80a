"""The pipeline's seams to the effects layer: lanes, prompts, patches, worktrees and stored runs.

Kept in one place so `run.py` reads as the flow of a task and tests can see what it touches.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from route_agent.lanes.errors import LaneError
from route_agent.lanes.prompt import Prompt, build_prompt, redact_text
from route_agent.policy.keys import missing_key as _missing_key
from route_agent.policy.models import ModelSpec
from route_agent.verify.findings import Finding
from route_agent.workspace.context import TrackedListing, context_paths
from route_agent.workspace.dependencies import DependencyDirs, resolve_dependency_dirs, unlink_dependency_dirs
from route_agent.workspace.git import WorkspaceError
from route_agent.workspace.patches import PatchLimits, PatchRejected, apply_patch_in_worktree, extract_patch
from route_agent.workspace.pool import Lease, PoolSettings, lease_worktree, prune_pool
from route_agent.workspace.worktree import StagedRun, UserChanges, Worktree, prune_stale_worktrees, stage_run, user_changes_from

if TYPE_CHECKING:
    from route_agent.pipeline.run import RunRequest

__all__ = [
    "LaneError",
    "PatchRejectedError",
    "RunWorktree",
    "TrackedListing",
    "apply_reply",
    "missing_key",
    "prompt_for",
    "prune_worktrees",
    "run_meta",
    "stage_run_for",
]

PatchRejectedError = PatchRejected
logger = logging.getLogger(__name__)


def missing_key(spec: ModelSpec, environ: Mapping[str, str] | None) -> str | None:
    import os

    return _missing_key(spec, os.environ if environ is None else environ)


def prompt_for(req: RunRequest, spec: ModelSpec, findings: Sequence[Finding], tracked: TrackedListing | None = None) -> Prompt:
    carried = [f"[{f.kind}] {f.check} {f.location()}: {f.message.splitlines()[0][:300] if f.message else ''}" for f in findings]
    extra = context_paths(req.repo, req.brief, req.change_set.paths, [f.path for f in findings if f.path], tracked)
    return build_prompt(req.brief, req.change_set, req.repo.root, spec, carried or None, extra_paths=extra)


def pool_settings(req: RunRequest) -> PoolSettings:
    return PoolSettings(req.policy.worktrees.pool_size, req.policy.worktrees.idle_days)


def prune_worktrees(req: RunRequest) -> None:
    """While a run starts: one-off worktrees of dead processes, then the pool's stale slots.
    Housekeeping: a failure is logged, and never ends the run (its own lease says if it cannot work)."""
    try:
        prune_stale_worktrees(req.repo)
        prune_pool(req.repo, pool_settings(req))
    except (OSError, WorkspaceError) as exc:
        logger.warning("route-agent: stale worktrees were not pruned: %s (`route-agent state prune` tries again)", exc)


LISTING_FRESH_S = 2.0
"""How old the change set's listing of the user's changed paths may be for the first reset to copy
those paths without a status of its own. A file first changed after the listing would be missed (it
would keep HEAD's text in the worktree): a command-line run starts milliseconds after the listing;
an editor's run that waited for the user (an approval) lists again."""


class RunWorktree:
    """The run's worktree: leased from the repository's pool when first needed, reset to the user's
    current state for every attempt (an escalation reuses it), released when the run ends. The user's
    installed-dependency folders (`verification.dependency_dirs`) are resolved once, when it is first
    prepared: checks and agent commands see them read-only (workspace/dependencies.py).

    `start_prepare()` begins a one-shot attempt's reset in a thread while its prompt is built and
    its model answers; `prepare()` then takes that reset (the worktree is untouched since). Only a
    made worktree is reset early: a first checkout waits for a reply that has a patch.
    """

    def __init__(self, req: RunRequest) -> None:
        self.req = req
        self.lease: Lease | None = None
        self._dependencies: DependencyDirs | None = None
        self._early: concurrent.futures.Future[tuple[Worktree, float | None] | None] | None = None
        self._guard = threading.Lock()
        self._resets = 0

    @property
    def dependencies(self) -> DependencyDirs:
        if self._dependencies is None:
            self._dependencies = resolve_dependency_dirs(self.req.repo.root, self.req.policy.verification.dependency_dirs)
        return self._dependencies

    def drop_dependency_links(self, worktree: Path) -> None:
        """Before a diff of the worktree is taken: no link to an installed folder may become part of it."""
        unlink_dependency_dirs(self.dependencies, worktree)

    def start_prepare(self) -> None:
        with self._guard:
            if self._early is not None:
                return  # a reset no attempt took: still the user's state, untouched
            early: concurrent.futures.Future[tuple[Worktree, float | None] | None] = concurrent.futures.Future()
            self._early = early

        def reset() -> None:
            try:
                early.set_result(self._prepare_now() if self._leased().is_made() else None)
            except BaseException as exc:  # handed to prepare(), which raises it as it would have
                early.set_exception(exc)

        threading.Thread(target=reset, name="route-agent-worktree-reset").start()

    def note_written(self, paths: Sequence[str]) -> None:
        """Paths an attempt wrote (its patch): the lease deletes them when it ends, with the copies."""
        if self.lease is not None:
            self.lease.note_written(paths)

    def prepare(self) -> tuple[Worktree, float | None]:
        """The worktree, reset; and the seconds a first checkout took when this call made it."""
        with self._guard:
            early, self._early = self._early, None
        if early is not None:
            prepared = early.result()
            if prepared is not None:
                return prepared
        return self._prepare_now()

    def _prepare_now(self) -> tuple[Worktree, float | None]:
        lease = self._leased()
        with self._guard:
            first, self._resets = self._resets == 0, self._resets + 1
        # The first reset runs before any repository code of this run: the filter overrides read when
        # the run opened the repository hold, and so does the change set's listing of the user's paths
        # while it is fresh. Later resets follow an attempt's checks: read both again.
        worktree = lease.prepare(self.req.buffers, self.req.repo.config if first else None, self._listed() if first else None)
        return worktree, lease.cold_seconds

    def _listed(self) -> UserChanges | None:
        listing = self.req.listing
        if listing is None or time.monotonic() - listing.taken > LISTING_FRESH_S:
            return None
        return user_changes_from(listing, self.dependencies.never_copied)

    def _leased(self) -> Lease:
        if self.lease is None:
            self.lease = lease_worktree(self.req.repo, pool_settings(self.req))
            self.lease.dependency_dirs = self.dependencies.never_copied
        return self.lease

    def release(self) -> None:
        """End the lease, after an early reset no attempt took (a warm reset: about a second at most),
        so that its copies of the user's files are deleted with the rest before the run ends."""
        with self._guard:
            early, self._early = self._early, None
        if early is not None:
            concurrent.futures.wait([early])  # its error, if any, was no attempt's: the run is over
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release()


def apply_reply(req: RunRequest, run_worktree: RunWorktree, reply_text: str) -> tuple[Worktree, str, float | None]:
    """Extract the patch from a reply and apply it in the run's worktree, freshly reset; PatchRejected
    on any problem (the next attempt resets the worktree again). Returns the worktree, the applied
    diff and the seconds a first checkout of the repository took (None when the worktree was reused)."""
    patch = extract_patch(reply_text)
    try:
        worktree, cold_seconds = run_worktree.prepare()
    except (WorkspaceError, PatchRejected) as exc:
        raise PatchRejected(f"cannot prepare a worktree: {exc}") from None
    run_worktree.note_written(patch.paths or [b.path for b in patch.blocks])
    verification = req.policy.verification
    limits = PatchLimits(verification.max_patch_files, verification.max_patch_bytes)
    return worktree, apply_patch_in_worktree(worktree, patch, limits), cold_seconds


def stage_run_for(req: RunRequest, worktree_base: str, diff: str) -> StagedRun:
    """The attempt's patch in its stored form, written while its checks run; kept if it is accepted."""
    return stage_run(req.repo, req.run_id, diff, worktree_base)


def run_meta(req: RunRequest, attempts: list[dict[str, object]]) -> dict[str, object]:
    """What a kept run stores besides its patch."""
    return {
        "brief": redact_text(req.decision.signals.brief, "brief")[0][:2000],  # stored: no secret in clear
        "attempts": attempts,
        "risk_score": req.decision.risk_score,
        "lane": req.decision.lane,
        # what `route-agent pr-body` and a commit message tell a reviewer
        "lane_reason": req.decision.lane_reason,
        "plan": req.decision.plan_name,
        "contributions": [c.as_dict() for c in req.decision.contributions],
        "always_strong": [str(a) for a in req.decision.always_strong],
    }
