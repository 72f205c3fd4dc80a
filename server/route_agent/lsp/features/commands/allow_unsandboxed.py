"""route-agent.allowUnsandboxed: store the user's acceptance that a folder's code runs unsandboxed."""

from __future__ import annotations

import logging
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import FolderArgs, parse_args, resolve_folder_uri
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.workspace.git import WorkspaceError

logger = logging.getLogger(__name__)


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    """Accept, as `route-agent policy approve --unsandboxed` does, that this folder's repository code
    (checks, tests, conftest) runs without the sandbox; the client asks the user first (issue 12, item 3)."""
    from route_agent.workspace.approvals import record_unsandboxed
    from route_agent.workspace.git import open_repo

    parsed = parse_args(FolderArgs, args)
    folder = ls.folders[resolve_folder_uri(ls, parsed.folder)]
    try:
        repo = open_repo(folder.root)
    except WorkspaceError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    record_unsandboxed(repo.root)
    logger.info("unsandboxed execution accepted for %s", repo.root)
    return {"accepted": True, "root": str(repo.root)}
