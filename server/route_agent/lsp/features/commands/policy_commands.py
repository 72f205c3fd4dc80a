"""route-agent.policyCommands: the verification commands a routed run in the folder would run, and
whether they are approved (pipeline/approve.py; git and the policy files read in a worker thread)."""

from __future__ import annotations

import asyncio
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import FolderArgs, parse_args, resolve_folder_uri
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.pipeline.approve import approval_state
from route_agent.policy import PolicyError
from route_agent.workspace.git import WorkspaceError


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(FolderArgs, args)
    folder = ls.folders[resolve_folder_uri(ls, parsed.folder)]
    try:
        state = await asyncio.to_thread(approval_state, folder.root, folder.policy_cache, ls.settings_for(folder).policy_path)
    except (PolicyError, WorkspaceError) as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    return {"folderUri": folder.uri, **state.as_dict()}
