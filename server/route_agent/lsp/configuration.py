"""Settings from the client: `workspace/configuration` pulled (the server's, then each folder's), or
`didChangeConfiguration`'s push (the server's only)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.settings import CONFIG_SECTION, RawOptions, parse_raw, resolve

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)


async def pull_configuration(ls: RouteAgentServer) -> None:
    """Ask for the settings once without a scope (the server's own) and once per workspace folder
    (`scopeUri`): a multi-root workspace may give each repository its own policy, lane, sandbox."""
    folders = list(ls.folders.values())
    items = [types.ConfigurationItem(section=CONFIG_SECTION)]
    items.extend(types.ConfigurationItem(scope_uri=folder.uri, section=CONFIG_SECTION) for folder in folders)
    try:
        result = await ls.workspace_configuration_async(types.ConfigurationParams(items=items))
    except Exception as exc:
        logger.warning("workspace/configuration failed: %s", exc)
        return
    values = list(result or [])
    unscoped = _parsed(values[0] if values else None)
    ls.apply_settings(ls.resolve_settings(unscoped))
    for folder, value in zip(folders, values[1:], strict=False):
        if ls.folders.get(folder.uri) is folder:  # not removed while we waited
            # The folder's answer over the unscoped one: what it leaves unset comes from there.
            ls.apply_folder_settings(folder, resolve(ls.init_options, unscoped, _parsed(value), workspace_root=folder.root))


def _parsed(value: object) -> RawOptions:
    raw, problems = parse_raw(value)
    for problem in problems:
        logger.warning(problem)
    return raw
