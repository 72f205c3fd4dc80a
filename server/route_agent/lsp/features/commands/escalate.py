"""route-agent.escalate: a strong run for a failed fast run, its findings carried."""

from __future__ import annotations

from typing import Any

from route_agent.lsp import routed_runs
from route_agent.lsp.command_args import RunArgs, parse_args, refused
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.pipeline.prepare import RunRefused


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(RunArgs, args)
    record = ls.runs.get(parsed.run_id)
    if record is None or not record.can_escalate:
        # Picked from a stale menu or prompt: say why, answer the request.
        why = "it was already escalated" if record is not None and record.escalated else (
            "only a failed fast-lane run can be escalated" if record is not None else "no such run")
        return refused(ls, f"run {parsed.run_id} cannot be escalated: {why}")
    try:
        new = await routed_runs.escalate(ls, record)
    except RunRefused as exc:
        return refused(ls, exc)
    return {"run_id": new.run_id, "lane": new.lane}
