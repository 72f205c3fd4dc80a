"""route-agent.addPathRule: a path rule into the policy in force, for clients that cannot take the code action's edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp import edits
from route_agent.lsp.command_args import PathRuleArgs, parse_args
from route_agent.lsp.policy_edit import add_path_rule_insertion, apply_insertion, new_policy_text
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.lsp.state.folders import FolderState
from route_agent.workspace.git import WorkspaceError


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    """For clients that cannot take the code action's edit: edit via applyEdit, or write the file.

    The file edited is the policy in force: the folder's `policyPath` setting when set, else the repository's.
    """
    parsed = parse_args(PathRuleArgs, args)
    folder = ls.folders.get(parsed.folder)
    if folder is None:
        raise JsonRpcInvalidParams.of(ValueError(f"unknown workspace folder {parsed.folder}"))
    explicit = ls.settings_for(folder).policy_path
    target = edits.policy_target(folder, explicit)
    if explicit is not None and not target.is_file():
        return _path_rulerefused(ls, f"the policyPath setting names {target}, which does not exist; create it or clear the "
                                      "setting, then add the rule again")
    try:
        edit = edits.add_path_rule_edit(ls, parsed.folder, parsed.signal, parsed.glob)
        if edit is not None and ls.client.apply_edit:
            result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="route-agent: add path rule"))
            return {"applied": bool(result.applied), "path": str(target)}
        new_text = new_policy_text(parsed.signal, parsed.glob)
        if target.is_file():
            text = target.read_text("utf-8")
            insertion = add_path_rule_insertion(text, parsed.signal, parsed.glob)
            if insertion is None:
                return _path_rulerefused(ls, f"{target} already lists {parsed.glob!r} under paths.{parsed.signal}, or its "
                                              f"paths.{parsed.signal} is not a list route-agent can edit; edit the file by hand")
            new_text = apply_insertion(text, insertion)
        _write_policy(folder, target, new_text)
    except (OSError, ValueError, WorkspaceError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _path_rulerefused(ls, f"cannot edit {target}: {reason}")
    ls.schedule_refresh(folder, 0.0)
    return {"applied": True, "path": str(target)}


def _write_policy(folder: FolderState, target: Path, text: str) -> None:
    from route_agent.workspace.safefs import write_file

    root = folder.snapshot.repo.root if folder.snapshot else folder.root
    try:
        rel = target.relative_to(root).as_posix()
    except ValueError:
        target.write_text(text, "utf-8")  # the user's own policyPath, outside the repository
        return
    # Never through a link the repository committed in the policy's place (issue 12, item 1).
    write_file(root, rel, text.encode("utf-8"))


def _path_rulerefused(ls: RouteAgentServer, why: str) -> dict[str, Any]:
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=f"route-agent: path rule not added: {why}"))
    return {"applied": False, "reason": why}
