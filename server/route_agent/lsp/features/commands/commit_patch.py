"""route-agent.applyAndCommit: `route-agent apply RUN_ID --commit` from the editor.

The verified patch goes into the files on disk and exactly its paths are committed on a new branch
(route-agent/RUN_ID), with the run's message and trailers; the ledger books it accepted with the
commit. Unsaved editor text in the patch's files would be overwritten on disk, so it is refused first.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from lsprotocol import types
from pygls import uris

from route_agent.ledger import LedgerError
from route_agent.lsp.command_args import RunArgs, parse_args
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.workspace.git import WorkspaceError, open_repo
from route_agent.workspace.patches import PatchRejected


def _tell(ls: RouteAgentServer, kind: types.MessageType, message: str) -> None:
    ls.window_show_message(types.ShowMessageParams(type=kind, message=f"route-agent: {message}"))


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    from route_agent.pipeline.artifacts import apply_run, record_review

    parsed = parse_args(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.can_apply:
        why = f"run {parsed.run_id} has no verified patch to commit"
        _tell(ls, types.MessageType.Warning, f"not committed: {why}")
        return {"applied": False, "reason": why}
    folder = ls.folders[record.folder_uri]
    unsaved = []
    for path in record.new_texts:
        doc = ls.documents.get(uris.from_fs_path(str(folder.root / path)) or "")
        on_disk = folder.root / path
        if doc is not None and (not on_disk.is_file() or doc.text != on_disk.read_text("utf-8", "replace")):
            unsaved.append(path)
    if unsaved:
        why = f"{', '.join(sorted(unsaved))} has unsaved changes in the editor; save or revert it first"
        _tell(ls, types.MessageType.Warning, f"not committed: {why}")
        return {"applied": False, "reason": why}
    try:
        result, commit_id, branch = await asyncio.to_thread(lambda: apply_run(open_repo(folder.root), record.run_id, commit=True))
    except (WorkspaceError, PatchRejected) as exc:
        _tell(ls, types.MessageType.Warning, f"not committed: {exc}")
        return {"applied": False, "reason": str(exc)}
    ls.schedule_refresh(folder, 0.0)
    if not result.applied:
        _tell(ls, types.MessageType.Warning, result.message)
        return {"applied": False, "conflicts": list(result.conflicts), "reason": result.message}
    try:
        await asyncio.to_thread(record_review, os.environ.get("ROUTE_AGENT_LEDGER") or None, record.run_id, "accepted", None, commit_id)
    except LedgerError as exc:
        _tell(ls, types.MessageType.Warning, f"the review was not recorded in the ledger: {exc}")
    _tell(ls, types.MessageType.Info, f"{result.message}; committed {(commit_id or '')[:12]} on branch {branch}")
    return {"applied": True, "commit": commit_id, "branch": branch}
