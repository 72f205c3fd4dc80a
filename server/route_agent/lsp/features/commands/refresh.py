"""route-agent.refresh: recompute every folder's risk now."""

from __future__ import annotations

from typing import Any

from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    ls.schedule_all(0.0)
    ls.deliver_diagnostics()
    return {"scheduled": len(ls.folders)}
