"""workspace/diagnostic (pull): every document that has or had diagnostics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


def handle(ls: RouteAgentServer, params: types.WorkspaceDiagnosticParams) -> types.WorkspaceDiagnosticReport:
    """Every document that has or had diagnostics: unchanged where the client's result id is current,
    in full otherwise (an empty full report clears a document whose diagnostics went away)."""
    previous = {p.uri: p.value for p in params.previous_result_ids}
    items: list[types.WorkspaceFullDocumentDiagnosticReport | types.WorkspaceUnchangedDocumentDiagnosticReport] = []
    for uri, version in sorted(ls.diagnostics.versions.items()):
        result_id = f"{uri}#{version}"
        doc = ls.document(uri)
        doc_version = doc.version if doc else None
        if previous.get(uri) == result_id:
            items.append(types.WorkspaceUnchangedDocumentDiagnosticReport(uri=uri, result_id=result_id, version=doc_version))
        else:
            items.append(types.WorkspaceFullDocumentDiagnosticReport(
                uri=uri, items=list(ls.diagnostics.cache.get(uri, [])), result_id=result_id, version=doc_version))
    return types.WorkspaceDiagnosticReport(items=items)
