"""route-agent.riskSummary: the folder's latest risk for status bars (risk_view.summary)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import SummaryArgs
from route_agent.lsp.risk_view import summary
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    try:
        parsed = SummaryArgs.model_validate(args[0] if args else {})
    except ValidationError as exc:
        raise JsonRpcInvalidParams.of(ValueError(str(exc))) from None
    folder = None
    if parsed.uri is not None:
        where = ls.locate(parsed.uri)
        folder = where[0] if where is not None else ls.folders.get(parsed.uri)
    elif len(ls.folders) == 1:
        folder = next(iter(ls.folders.values()))
    if folder is None:
        raise JsonRpcInvalidParams.of(ValueError(f"no workspace folder contains {parsed.uri}"))
    return summary(ls, folder)
