"""The server's diagnostics store, and their delivery: pushed to clients without pull diagnostics,
version-bumped (with a refresh request) for pull clients; stale ones are cleared either way.

Every diagnostic is recomputed from server state (folder snapshots, policy errors, the latest run
per folder, policy documents being edited) by `deliver`; the pull handlers only read the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls import uris

from route_agent.lsp.diagnostic_items import (
    LOWERED_CODE,
    SOURCE,
    LineLength,
    drift_hint,
    escalation_diagnostic,
    finding_diagnostic,
    issue_diagnostic,
    line_range,
    risk_notes,
)
from route_agent.lsp.state.folders import FolderState
from route_agent.lsp.visible import visible_diagnostics

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


class DiagnosticStore:
    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        """Per-URI counter behind pull diagnostics' result_id."""
        self.cache: dict[str, list[types.Diagnostic]] = {}
        """What was last delivered, by URI."""
        self.policy: dict[str, list[types.Diagnostic]] = {}
        """Live diagnostics of policy files being edited, by URI."""
        self.policy_timers: dict[str, asyncio.TimerHandle] = {}
        """Pending (debounced) validations of policy documents, by URI."""

    def result_id(self, uri: str) -> str:
        return f"{uri}#{self.versions.get(uri, 0)}"

    def collect(self, ls: RouteAgentServer) -> dict[str, list[types.Diagnostic]]:
        out: dict[str, list[types.Diagnostic]] = {}
        for folder in ls.folders.values():
            _collect_folder(ls, folder, out)
        for uri, diags in self.policy.items():
            out.setdefault(uri, []).extend(diags)
        return {uri: visible_diagnostics(diags) for uri, diags in out.items()}

    def deliver(self, ls: RouteAgentServer) -> None:
        """Recompute every diagnostic; push what changed, or bump versions and ask pull clients to refresh."""
        current = self.collect(ls)
        changed = False
        for uri in set(current) | set(self.cache):
            new = current.get(uri, [])
            old = self.cache.get(uri)
            if old is not None and _key(old) == _key(new):
                continue
            changed = True
            self.versions[uri] = self.versions.get(uri, 0) + 1
            if new:
                self.cache[uri] = new
            else:
                self.cache.pop(uri, None)
            if not ls.client.pull_diagnostics:
                doc = ls.document(uri)
                ls.text_document_publish_diagnostics(
                    types.PublishDiagnosticsParams(uri=uri, diagnostics=new, version=doc.version if doc else None))
        if changed and ls.client.pull_diagnostics and ls.client.diagnostic_refresh:
            ls.workspace_diagnostic_refresh(None)


def _line_length(ls: RouteAgentServer, uri: str) -> LineLength:
    doc = ls.document(uri)
    if doc is None:
        return None
    return lambda line0: len(doc.line(line0))


def _collect_folder(ls: RouteAgentServer, folder: FolderState, out: dict[str, list[types.Diagnostic]]) -> None:  # noqa: PLR0912 (one branch per source of diagnostics)
    snapshot = folder.snapshot
    if snapshot is not None:
        for rel in snapshot.change_set.paths:
            uri = ls.uri_for(folder, rel)
            notes = risk_notes(snapshot.decision, rel, _line_length(ls, uri))
            if notes:
                out.setdefault(uri, []).extend(notes)
        for hit in snapshot.drift:
            uri = ls.uri_for(folder, hit.path)
            out.setdefault(uri, []).append(drift_hint(hit, _line_length(ls, uri)))
        for warning in snapshot.policy.warnings:  # an open policy document shows its own, as typed
            uri = uris.from_fs_path(warning.file)
            if uri and uri not in ls.diagnostics.policy:
                out.setdefault(uri, []).append(issue_diagnostic(warning, types.DiagnosticSeverity.Warning, LOWERED_CODE))
    if folder.policy_error is not None:
        for issue in folder.policy_error.issues:
            uri = uris.from_fs_path(issue.file)
            if uri and uri not in ls.diagnostics.policy:
                out.setdefault(uri, []).append(types.Diagnostic(
                    range=line_range(issue.line - 1, None), message=issue.message,
                    severity=types.DiagnosticSeverity.Error, source=SOURCE, code="policy"))
    record = ls.runs.latest(folder.uri)
    if record is not None:
        for finding in record.findings:
            if finding.path:
                out.setdefault(ls.uri_for(folder, finding.path), []).append(finding_diagnostic(finding, record.run_id))
            elif record.origin:
                # A check that names no file (a lint exit code, a crashed runner): at the file the
                # run started from, line 1, so the failure is seen where the user asked.
                at_origin = dataclasses.replace(finding, path=record.origin, line=1, column=1)
                out.setdefault(ls.uri_for(folder, record.origin), []).append(finding_diagnostic(at_origin, record.run_id))
        if record.can_escalate and record.anchor is not None:
            out.setdefault(ls.uri_for(folder, record.anchor[0]), []).append(escalation_diagnostic(record))


def _key(diags: list[types.Diagnostic]) -> tuple[Any, ...]:
    return tuple((d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character,
                  d.message, d.severity, d.source, d.code) for d in diags)
