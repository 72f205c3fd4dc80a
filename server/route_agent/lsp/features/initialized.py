"""initialized: the first refresh, file watching, and the client's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp import file_watch
from route_agent.lsp.configuration import pull_configuration

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


async def handle(ls: RouteAgentServer, params: types.InitializedParams) -> None:
    ls.schedule_all(0.0)
    if ls.client.watched_files_dynamic:
        ls.spawn(file_watch.register_watchers(ls))
    # Always, even with registered watchers: a client may accept them and still never report git's
    # own files (one that watches only folders holding tracked files). A few stats every 2 s.
    ls.spawn(file_watch.poll_watched_files(ls))
    if ls.client.configuration:
        await pull_configuration(ls)
