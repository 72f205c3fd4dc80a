"""route-agent.applyPatch: the verified patch into the user's files (applyEdit, else written on disk)."""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp import edits
from route_agent.lsp.command_args import RunArgs, parse_args
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.lsp.state.runs import RunRecord
from route_agent.workspace.git import WorkspaceError


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.can_apply:
        # Picked from a menu that is no longer current: say why, answer the request.
        why = f"run {parsed.run_id} has no verified patch" if record is None or record.status != "passed" else \
            f"run {parsed.run_id}'s patch cannot be applied from the editor; use: route-agent apply {parsed.run_id}"
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"route-agent: not applied: {why}"))
        return {"applied": False, "reason": why}
    edit, conflicts = edits.patch_edit(ls, record)
    if conflicts or edit is None:
        why = edits.apply_blocker(ls, record) or "files changed since the run: " + ", ".join(conflicts)
        already = why == "the patch is already applied"
        ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info if already else types.MessageType.Warning,
                                                       message=f"route-agent: not applied: {why}"))
        return {"applied": False, "conflicts": [] if already else conflicts, "reason": why}
    if not ls.client.apply_edit:
        return await _apply_on_disk(ls, record)
    result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="route-agent: apply verified patch"))
    return {"applied": bool(result.applied), "reason": result.failure_reason}


async def _apply_on_disk(ls: RouteAgentServer, record: RunRecord) -> dict[str, Any]:
    """For a client without workspace/applyEdit: `route-agent apply`'s three-way write of the stored run."""
    from route_agent.workspace.git import open_repo
    from route_agent.workspace.worktree import apply_to_user_tree

    folder = ls.folders[record.folder_uri]
    try:
        result = await asyncio.to_thread(lambda: apply_to_user_tree(open_repo(folder.root), record.run_id))
    except WorkspaceError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    ls.window_show_message(types.ShowMessageParams(
        type=types.MessageType.Info if result.applied else types.MessageType.Warning, message=f"route-agent: {result.message}"))
    ls.schedule_refresh(folder, 0.0)
    return {"applied": result.applied, "conflicts": list(result.conflicts), "reason": result.message}
