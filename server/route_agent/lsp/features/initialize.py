"""initialize: the client's features, initialization options and workspace folders."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.capabilities import ClientFeatures
from route_agent.lsp.settings import parse_raw

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


logger = logging.getLogger(__name__)


def handle(ls: RouteAgentServer, params: types.InitializeParams) -> None:
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
