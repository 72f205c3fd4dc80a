"""route-agent.routeFix (alias route-agent.routeTask): start a routed run; with `wait`, answer when it ends."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from route_agent.lsp import routed_runs
from route_agent.lsp.command_args import RouteFixArgs, parse_args, refused, resolve_folder_uri
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations
from route_agent.pipeline.prepare import RunRefused


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(RouteFixArgs, args)
    folder_uri = resolve_folder_uri(ls, parsed.folder)
    line = int((parsed.range or {}).get("start", {}).get("line", 0))
    # "auto" (or no lane) defers to the `lane` setting, as the risk shown in the editor does.
    default = ls.settings_for(ls.folders.get(folder_uri)).lane
    lane: Literal["auto", "fast", "strong"] = parsed.lane if parsed.lane in ("fast", "strong") else default  # type: ignore[assignment]
    try:
        record = await routed_runs.start_run(ls, folder_uri, parsed.brief, lane, (parsed.path, line) if parsed.path else None)
    except RunRefused as exc:
        return refused(ls, exc)
    if not parsed.wait or record.task is None:
        return {"run_id": record.run_id, "lane": record.lane, "risk_score": record.risk_score}
    routed_runs.cancel_with_request(ls, record)
    await asyncio.wait([record.task])
    return record.as_dict()
