"""textDocument/diagnostic (pull): the store's diagnostics for one document, version-based result_id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from route_agent.lsp.diagnostic_items import SOURCE

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


OPTIONS = types.DiagnosticOptions(identifier=SOURCE, inter_file_dependencies=True, workspace_diagnostics=True)
"""Workspace diagnostics too: verification findings land in files that are not open (a failing
test), and a pull client asks only for open documents otherwise."""


def handle(ls: RouteAgentServer, params: types.DocumentDiagnosticParams) -> types.DocumentDiagnosticReport:
    uri = params.text_document.uri
    result_id = ls.diagnostics.result_id(uri)
    if params.previous_result_id == result_id:
        return types.RelatedUnchangedDocumentDiagnosticReport(result_id=result_id)
    return types.RelatedFullDocumentDiagnosticReport(items=list(ls.diagnostics.cache.get(uri, [])), result_id=result_id)
