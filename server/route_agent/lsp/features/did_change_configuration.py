"""workspace/didChangeConfiguration: pull the settings again, or take the pushed ones."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.configuration import pull_configuration
from route_agent.lsp.settings import parse_raw

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


logger = logging.getLogger(__name__)


async def handle(ls: RouteAgentServer, params: types.DidChangeConfigurationParams) -> None:
    if ls.client.configuration:
        await pull_configuration(ls)
        return
    raw, problems = parse_raw(params.settings)
    for problem in problems:
        logger.warning(problem)
    ls.apply_settings(ls.resolve_settings(raw))
