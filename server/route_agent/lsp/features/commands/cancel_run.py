"""route-agent.cancelRun: cancel a routed run (its cleanup runs)."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import RunArgs, parse_args
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None:
        raise JsonRpcInvalidParams.of(ValueError(f"no run {parsed.run_id}"))
    cancelled = await ls.runs.cancel([record])
    return {"cancelled": cancelled, "status": record.status}
