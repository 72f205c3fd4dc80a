"""codeAction/resolve: the edit of an action offered without one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.edits import fill_edit

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def handle(ls: RouteAgentServer, action: types.CodeAction) -> types.CodeAction:
    if action.edit is None and isinstance(action.data, dict):
        fill_edit(ls, action)
    return action
