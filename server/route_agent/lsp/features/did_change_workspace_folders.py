"""workspace/didChangeWorkspaceFolders: folders added (and refreshed) or removed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.configuration import pull_configuration

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def handle(ls: RouteAgentServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    for removed in params.event.removed:
        ls.remove_folder(removed.uri)
    for added in params.event.added:
        folder = ls.add_folder(added.uri, added.name)
        if folder is not None:
            ls.schedule_refresh(folder, 0.0)
    if params.event.added and ls.client.configuration:
        ls.spawn(pull_configuration(ls))  # the new folders' own settings (scopeUri)
    ls.deliver_diagnostics()
