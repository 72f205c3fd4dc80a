"""route-agent.explainRisk: the folder's risk, itemised, as a message and as data."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from route_agent.lsp.command_args import FolderPathArgs, parse_args
from route_agent.lsp.risk_view import compute_hover
from route_agent.lsp.server import RouteAgentServer  # at run time: pygls reads the handler's annotations


def handle(ls: RouteAgentServer, *args: Any) -> dict[str, Any]:
    parsed = parse_args(FolderPathArgs, args)
    folder = ls.folders.get(parsed.folder or "") or next(iter(ls.folders.values()), None)
    if folder is None or folder.snapshot is None:
        raise JsonRpcInvalidParams.of(ValueError("no risk has been computed for this folder yet"))
    decision = folder.snapshot.decision
    rel = parsed.path if parsed.path in decision.signals.paths else (decision.signals.paths[0] if decision.signals.paths else "")
    text = compute_hover(decision, rel, -1, folder.refreshing) if rel else None
    text = text or f"Risk score: {decision.risk_score} -> {decision.lane} lane (no changes)"
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=text.replace("**", "").replace("`", "")))
    return {"markdown": text, **decision.as_dict()}
