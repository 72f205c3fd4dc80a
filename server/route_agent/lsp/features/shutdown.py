"""shutdown: cancel runs, timers and refreshes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


async def handle(ls: RouteAgentServer, params: None) -> None:
    await ls.stop_everything()
