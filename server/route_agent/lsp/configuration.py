"""Settings from the client: `workspace/configuration` pulled, or `didChangeConfiguration`'s push."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.settings import CONFIG_SECTION, parse_raw

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)


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
