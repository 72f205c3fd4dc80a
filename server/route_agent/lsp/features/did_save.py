"""textDocument/didSave: unsaved buffers count, so the folder's risk is refreshed (debounced)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def handle(ls: RouteAgentServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.document_touched(params.text_document.uri)
