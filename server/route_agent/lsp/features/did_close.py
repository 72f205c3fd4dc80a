"""textDocument/didClose: the document is gone; its folder's risk and any policy diagnostics follow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def handle(ls: RouteAgentServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.document_closed(params.text_document.uri)
