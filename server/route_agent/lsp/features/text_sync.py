"""didOpen / didChange / didSave / didClose: unsaved buffers count, so every edit schedules a refresh.

The document itself is updated by the protocol (spliced lines); the work per change here is one
dictionary lookup and re-arming the folder's debounce timer. Policy files being edited get live
diagnostics from their own text, without waiting for git.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.features import diagnostics

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def register(server: RouteAgentServer) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(on_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(on_change)
    server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))(on_save)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(on_close)


def _touch(ls: RouteAgentServer, uri: str) -> None:
    where = ls.locate(uri)
    if where is not None:
        ls.schedule_refresh(where[0])
    if diagnostics.is_policy_document(ls, uri):
        diagnostics.schedule_policy_check(ls, uri)


def on_open(ls: RouteAgentServer, params: types.DidOpenTextDocumentParams) -> None:
    _touch(ls, params.text_document.uri)


def on_change(ls: RouteAgentServer, params: types.DidChangeTextDocumentParams) -> None:
    _touch(ls, params.text_document.uri)


def on_save(ls: RouteAgentServer, params: types.DidSaveTextDocumentParams) -> None:
    _touch(ls, params.text_document.uri)


def on_close(ls: RouteAgentServer, params: types.DidCloseTextDocumentParams) -> None:
    where = ls.locate(params.text_document.uri)
    if where is not None:
        ls.schedule_refresh(where[0])
    diagnostics.forget_policy_document(ls, params.text_document.uri)
