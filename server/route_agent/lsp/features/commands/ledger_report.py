"""route-agent.ledgerReport: the ledger's per-lane figures as JSON."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from route_agent.ledger import LedgerError, open_ledger
from route_agent.ledger.report import report_json
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


async def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        ledger = open_ledger(os.environ.get("ROUTE_AGENT_LEDGER") or None)
        try:
            return report_json(ledger.rows(), ledger.location)
        finally:
            ledger.close()

    try:
        return await asyncio.to_thread(read)
    except LedgerError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
