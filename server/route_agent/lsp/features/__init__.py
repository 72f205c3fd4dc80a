"""One module per LSP capability; `register_all` wires them onto a server in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def register_all(server: RouteAgentServer) -> None:
    from route_agent.lsp.features import (
        code_actions,
        commands,
        diagnostics,
        hover,
        lifecycle,
        text_sync,
        watched_files,
    )

    for module in (lifecycle, text_sync, watched_files, hover, code_actions, diagnostics, commands):
        module.register(server)
