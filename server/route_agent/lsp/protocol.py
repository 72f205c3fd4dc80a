"""pygls's LSP protocol with text synchronisation that splices lines instead of rebuilding text.

The built-in didOpen/didChange/didClose handlers keep pygls's own `TextDocument`s, whose incremental
update rebuilds the whole text on every change. These overrides keep `LineDocument`s in the
server's store instead and then call the server's handlers, as pygls does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls import uris
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from route_agent.lsp.pygls_private import forget_request, request_future
from route_agent.lsp.state.documents import LineDocument
from route_agent.lsp.visible import visible_params

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


logger = logging.getLogger(__name__)

FastHandler = Callable[[Any], Any]
NOT_HANDLED = object()
"""Returned by a fast handler whose params are not the plain shape it expects: use the full path."""


class RouteAgentProtocol(LanguageServerProtocol):
    _server: RouteAgentServer

    def __init__(self, server: RouteAgentServer, converter: Any) -> None:
        super().__init__(server, converter)
        self.fast_requests: dict[str, FastHandler] = {}
        """Hot read-only requests answered straight from JSON (no cattrs round trip), by method."""

    def notify(self, method: str, params: Any | None = None) -> None:
        """Every notification the server sends; the text a user reads has its invisible characters shown."""
        super().notify(method, visible_params(method, params))

    def send_request(self, method: str, params: Any | None = None, callback: Callable[[Any], None] | None = None,
                     msg_id: Any | None = None) -> Future[Any]:
        return super().send_request(method, visible_params(method, params), callback, msg_id)

    def send_result_json(self, msg_id: Any, result: Any) -> None:
        import json

        body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}, separators=(",", ":")).encode()
        writer = self.writer
        if writer is not None:
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _handle_response(self, msg_id: Any, result: Any | None = None, error: Any | None = None) -> None:
        """A reply to a server-to-client request whose future is already done is dropped.

        At shutdown the tasks awaiting such requests (`client/registerCapability`,
        `workspace/configuration`) are cancelled, which cancels their futures; a client that
        answers afterwards made pygls call `set_result` on a cancelled future, and the
        `InvalidStateError` ended the server with exit code 1.
        """
        future = request_future(self, msg_id)
        if future is not None and future.done():
            forget_request(self, msg_id)
            logger.debug("dropped a late reply to request %s: it was cancelled", msg_id)
            return
        super()._handle_response(msg_id, result, error)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Generator[Any, Any, None]:
        item = params.text_document
        doc = LineDocument.open(item, uris.to_fs_path(item.uri), self.workspace.position_codec)
        self._server.documents.put(doc)
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Generator[Any, Any, None]:
        doc = self._server.documents.get(params.text_document.uri)
        if doc is not None:
            for change in params.content_changes:
                doc.apply(change)
            doc.version = params.text_document.version
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Generator[Any, Any, None]:
        self._server.documents.remove(params.text_document.uri)
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None
