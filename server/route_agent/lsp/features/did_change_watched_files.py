"""workspace/didChangeWatchedFiles: git's HEAD or index or a policy changed; refresh that folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types
from pygls import uris

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def handle(ls: RouteAgentServer, params: types.DidChangeWatchedFilesParams) -> None:
    touched = set()
    for change in params.changes:
        path = uris.to_fs_path(change.uri)
        if path is None:
            continue
        for folder in ls.folders.values():
            policy_path = ls.settings_for(folder).policy_path
            if path.startswith(str(folder.root)) or (policy_path is not None and path == str(policy_path)):
                touched.add(folder.uri)
    for uri in touched:
        ls.schedule_refresh(ls.folders[uri])
