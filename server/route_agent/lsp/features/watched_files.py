"""workspace/didChangeWatchedFiles, registered dynamically for git's HEAD and index and the policies.

Registered only when the client supports dynamic registration; otherwise saves still refresh.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls import uris

from route_agent.policy import REPO_POLICY_PATHS

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)

WATCH_GLOBS = ("**/.git/HEAD", "**/.git/index", *(f"**/{p}" for p in REPO_POLICY_PATHS))


def register(server: RouteAgentServer) -> None:
    server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(on_watched_files)


def watchers(ls: RouteAgentServer) -> list[types.FileSystemWatcher]:
    found = [types.FileSystemWatcher(glob_pattern=glob) for glob in WATCH_GLOBS]
    if ls.settings.policy_path is not None:
        found.append(types.FileSystemWatcher(glob_pattern=str(ls.settings.policy_path)))
    return found


async def register_watchers(ls: RouteAgentServer) -> None:
    options = types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers(ls))
    registration = types.Registration(id=f"route-agent-watch-{uuid.uuid4()}", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                      register_options=options)
    try:
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
    except Exception as exc:
        logger.warning("could not register file watchers: %s", exc)


def on_watched_files(ls: RouteAgentServer, params: types.DidChangeWatchedFilesParams) -> None:
    touched = set()
    for change in params.changes:
        path = uris.to_fs_path(change.uri)
        if path is None:
            continue
        for folder in ls.folders.values():
            if path.startswith(str(folder.root)) or (ls.settings.policy_path is not None and path == str(ls.settings.policy_path)):
                touched.add(folder.uri)
    for uri in touched:
        ls.schedule_refresh(ls.folders[uri])
