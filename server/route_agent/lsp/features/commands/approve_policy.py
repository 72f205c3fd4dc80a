"""route-agent.approvePolicy: store the approval of the repository policy's commands, as `route-agent
policy approve` does (pipeline/approve.py); only for exactly the list whose SHA-256 the client showed
the user. Git and the policy files are read in a worker thread."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import ApproveArgs, parse_args, resolve_folder_uri
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.pipeline.approve import ApprovalMismatch, approval_state, approve
from route_agent.policy import PolicyError
from route_agent.workspace.git import WorkspaceError

logger = logging.getLogger(__name__)


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(ApproveArgs, args)
    folder = ls.folders[resolve_folder_uri(ls, parsed.folder)]

    def work() -> str | None:
        return approve(approval_state(folder.root, folder.policy_cache), parsed.sha256)

    try:
        digest = await asyncio.to_thread(work)
    except (PolicyError, WorkspaceError, ApprovalMismatch) as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    if digest is None:
        return {"approved": True, "sha256": None, "note": "the repository policy declares no commands of its own"}
    logger.info("policy commands of %s approved (sha256 %s)", folder.root, digest)
    ls.schedule_refresh(folder, 0.0)  # the snapshot's approval state changed
    return {"approved": True, "sha256": digest}
