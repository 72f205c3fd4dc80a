"""The pipeline's seams to the effects layer: lanes, prompts, patches, worktrees and stored runs.

Kept in one place so `run.py` reads as the flow of a task and tests can see what it touches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from route_agent.lanes.errors import LaneError
from route_agent.lanes.prompt import Prompt, build_prompt, redact_text
from route_agent.policy.keys import missing_key as _missing_key
from route_agent.policy.models import ModelSpec
from route_agent.verify.findings import Finding
from route_agent.workspace.context import context_paths
from route_agent.workspace.git import WorkspaceError
from route_agent.workspace.patches import PatchLimits, PatchRejected, apply_patch_in_worktree, extract_patch
from route_agent.workspace.worktree import Worktree, create_worktree, prune_stale_worktrees, remove_worktree, save_run

if TYPE_CHECKING:
    from route_agent.pipeline.run import RunRequest

__all__ = [
    "LaneError",
    "PatchRejectedError",
    "apply_reply",
    "missing_key",
    "prompt_for",
    "prune_stale_worktrees",
    "remove_worktree",
    "save_run_for",
]

PatchRejectedError = PatchRejected


def missing_key(spec: ModelSpec, environ: Mapping[str, str] | None) -> str | None:
    import os

    return _missing_key(spec, os.environ if environ is None else environ)


def prompt_for(req: RunRequest, spec: ModelSpec, findings: Sequence[Finding]) -> Prompt:
    carried = [f"[{f.kind}] {f.check} {f.location()}: {f.message.splitlines()[0][:300] if f.message else ''}" for f in findings]
    extra = context_paths(req.repo, req.brief, req.change_set.paths, [f.path for f in findings if f.path])
    return build_prompt(req.brief, req.change_set, req.repo.root, spec, carried or None, extra_paths=extra)


def apply_reply(req: RunRequest, reply_text: str) -> tuple[Worktree | None, str]:
    """Extract the patch from a reply and apply it in a fresh worktree; PatchRejected on any problem.

    The worktree is removed again when the patch is rejected, so the caller only cleans up a
    worktree it was given.
    """
    patch = extract_patch(reply_text)
    try:
        worktree = create_worktree(req.repo, f"{req.run_id}-{len(reply_text) % 997}", req.buffers)
    except (WorkspaceError, PatchRejected) as exc:
        raise PatchRejected(f"cannot create a worktree: {exc}") from None
    try:
        verification = req.policy.verification
        diff = apply_patch_in_worktree(worktree, patch, PatchLimits(verification.max_patch_files, verification.max_patch_bytes))
    except BaseException:
        remove_worktree(req.repo, worktree)
        raise
    return worktree, diff


def save_run_for(req: RunRequest, worktree_base: str, diff: str, attempts: list[dict[str, object]]) -> None:
    save_run(
        req.repo,
        req.run_id,
        diff,
        worktree_base,
        {
            "brief": redact_text(req.decision.signals.brief, "brief")[0][:2000],  # stored: no secret in clear
            "attempts": attempts,
            "risk_score": req.decision.risk_score,
            "lane": req.decision.lane,
        },
    )
