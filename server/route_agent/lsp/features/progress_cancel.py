"""window/workDoneProgress/cancel: the user cancelled a routed run from its progress."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.routed_runs import cancel

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


logger = logging.getLogger(__name__)


def handle(ls: RouteAgentServer, params: types.WorkDoneProgressCancelParams) -> None:
    record = ls.runs.by_token(str(params.token))
    if record is not None and cancel(record):
        logger.info("run %s cancelled from its progress", record.run_id)
