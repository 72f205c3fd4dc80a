"""route-agent.policyCommands: the verification commands a routed run in the folder would run, and whether they are approved."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import FolderArgs, parse_args, resolve_folder_uri
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.policy import PolicyError
from route_agent.workspace.git import WorkspaceError
from route_agent.workspace.state import user_policy_path


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    """The verification commands a routed run in the folder would run, and whether they are approved."""
    parsed = parse_args(FolderArgs, args)
    folder = ls.folders[resolve_folder_uri(ls, parsed.folder)]
    try:
        status = approval_status(ls, folder)
    except (PolicyError, WorkspaceError) as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    return {"folderUri": folder.uri, **status}


def approval_status(ls: RouteAgentServer, folder: Any) -> dict[str, Any]:
    from route_agent.policy.approval import commands_hash, policy_commands, repo_policy_needing_approval
    from route_agent.workspace.git import open_repo

    repo = open_repo(folder.root)
    explicit = ls.settings.policy_path
    loaded = folder.policy_cache.for_workspace(repo.root, explicit, user_policy_path())
    commands = policy_commands(loaded.policy)
    status = None if explicit is not None else repo_policy_needing_approval(repo.root, loaded.policy, folder.policy_cache.layer)
    return {"policyPath": str(status.policy_path) if status else (str(explicit) if explicit else None),
            "commands": [c.as_dict() for c in commands], "sha256": commands_hash(commands),
            "approved": status is None or status.approved,
            "trusted": status is None}
