"""route-agent.approvePolicy: store the approval of the repository policy's commands."""

from __future__ import annotations

import logging
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import ApproveArgs, parse_args, resolve_folder_uri
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.policy import PolicyError
from route_agent.workspace.git import WorkspaceError
from route_agent.workspace.state import user_policy_path

logger = logging.getLogger(__name__)


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    """Store the approval of the repository policy's commands, as `route-agent policy approve` does;
    only for exactly the list whose SHA-256 the client showed the user."""
    from route_agent.policy.approval import record_approval, repo_policy_needing_approval
    from route_agent.workspace.git import open_repo

    parsed = parse_args(ApproveArgs, args)
    folder = ls.folders[resolve_folder_uri(ls, parsed.folder)]
    try:
        repo = open_repo(folder.root)
        loaded = folder.policy_cache.for_workspace(repo.root, None, user_policy_path())
        status = repo_policy_needing_approval(repo.root, loaded.policy, folder.policy_cache.layer)
    except (PolicyError, WorkspaceError) as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    if status is None:
        return {"approved": True, "sha256": None, "note": "the repository policy declares no commands of its own"}
    if status.sha256 != parsed.sha256.lower():
        raise JsonRpcInvalidParams.of(ValueError(
            f"the policy's commands changed (sha256 {status.sha256}, not {parsed.sha256}); nothing was approved"))
    record_approval(repo.root, status.policy_path, status.commands)
    logger.info("policy commands of %s approved (sha256 %s)", repo.root, status.sha256)
    return {"approved": True, "sha256": status.sha256}
