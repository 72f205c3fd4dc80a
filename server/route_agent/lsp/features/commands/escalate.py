"""route-agent.escalate: a strong run for a failed fast run, its findings carried."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp import routed_runs
from route_agent.lsp.command_args import RunArgs, parse_args, refused
from route_agent.lsp.routed_runs import RunRefused
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.can_escalate:
        raise JsonRpcInvalidParams.of(ValueError(f"run {parsed.run_id} cannot be escalated"))
    try:
        new = await routed_runs.escalate(ls, record)
    except RunRefused as exc:
        raise refused(exc) from None
    return {"run_id": new.run_id, "lane": new.lane}
