"""initialize / initialized / shutdown, configuration and workspace folders."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.capabilities import ClientFeatures
from route_agent.lsp.settings import CONFIG_SECTION, parse_raw

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)


def register(server: RouteAgentServer) -> None:
    server.feature(types.INITIALIZE)(on_initialize)
    server.feature(types.INITIALIZED)(on_initialized)
    server.feature(types.SHUTDOWN)(on_shutdown)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(on_did_change_configuration)
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(on_did_change_folders)


def on_initialize(ls: RouteAgentServer, params: types.InitializeParams) -> None:
    ls.client = ClientFeatures.from_capabilities(params.capabilities)
    raw, problems = parse_raw(params.initialization_options)
    ls.init_options = raw
    for problem in problems:
        logger.warning(problem)
    if params.workspace_folders:
        for folder in params.workspace_folders:
            ls.add_folder(folder.uri, folder.name)
    elif params.root_uri:
        ls.add_folder(params.root_uri)
    elif params.root_path:
        from pygls import uris

        root_uri = uris.from_fs_path(params.root_path)
        if root_uri:
            ls.add_folder(root_uri)
    ls.apply_settings(ls.resolve_settings())


async def on_initialized(ls: RouteAgentServer, params: types.InitializedParams) -> None:
    from route_agent.lsp.features import watched_files

    ls.schedule_all(0.0)
    if ls.client.watched_files_dynamic:
        ls.spawn(watched_files.register_watchers(ls))
    # Always, even with registered watchers: a client may accept them and still never report git's
    # own files (one that watches only folders holding tracked files). A few stats every 2 s.
    ls.spawn(watched_files.poll_watched_files(ls))
    if ls.client.configuration:
        await pull_configuration(ls)


async def pull_configuration(ls: RouteAgentServer) -> None:
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=CONFIG_SECTION)])
        )
    except Exception as exc:
        logger.warning("workspace/configuration failed: %s", exc)
        return
    value = result[0] if result else None
    raw, problems = parse_raw(value)
    for problem in problems:
        logger.warning(problem)
    ls.apply_settings(ls.resolve_settings(raw))


async def on_did_change_configuration(ls: RouteAgentServer, params: types.DidChangeConfigurationParams) -> None:
    if ls.client.configuration:
        await pull_configuration(ls)
        return
    raw, problems = parse_raw(params.settings)
    for problem in problems:
        logger.warning(problem)
    ls.apply_settings(ls.resolve_settings(raw))


def on_did_change_folders(ls: RouteAgentServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    for removed in params.event.removed:
        ls.remove_folder(removed.uri)
    for added in params.event.added:
        folder = ls.add_folder(added.uri, added.name)
        if folder is not None:
            ls.schedule_refresh(folder, 0.0)
    from route_agent.lsp.features import diagnostics

    diagnostics.deliver(ls)


async def on_shutdown(ls: RouteAgentServer, params: None) -> None:
    await ls.stop_everything()
