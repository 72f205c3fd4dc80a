"""textDocument/hover: the folder's latest risk, itemised, in any file of the change set.

Never waits for git: it reads the latest snapshot and says "(refreshing…)" when one is pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from route_agent.lsp.protocol import NOT_HANDLED
from route_agent.lsp.risk_view import hover_text, plain

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def fast(ls: RouteAgentServer, params: Any) -> Any:
    """Hover straight from the JSON params to a JSON result; odd shapes take the typed path."""
    try:
        uri = params["textDocument"]["uri"]
        line = params["position"]["line"]
        character = params["position"]["character"]
    except (TypeError, KeyError):
        return NOT_HANDLED
    if not isinstance(uri, str) or type(line) is not int or type(character) is not int or line < 0 or character < 0:
        return NOT_HANDLED
    text = hover_text(ls, uri, line)
    if text is None:
        return None
    markdown = ls.client.hover_markdown
    return {"contents": {"kind": "markdown" if markdown else "plaintext", "value": text if markdown else plain(text)}}


def handle(ls: RouteAgentServer, params: types.HoverParams) -> types.Hover | None:
    text = hover_text(ls, params.text_document.uri, params.position.line)
    if text is None:
        return None
    markdown = ls.client.hover_markdown
    kind = types.MarkupKind.Markdown if markdown else types.MarkupKind.PlainText
    return types.Hover(contents=types.MarkupContent(kind=kind, value=text if markdown else plain(text)))
