"""Diagnostics: risk notes, classifier drift, verification findings, the escalation prompt, and live
errors in a policy file being edited. Pulled (textDocument/diagnostic, version-based result_id)
when the client supports it, pushed otherwise; stale ones are cleared either way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls import uris

from route_agent.lsp.state.folders import DriftHit, FolderState
from route_agent.lsp.state.runs import Finding, RunRecord
from route_agent.policy import REPO_POLICY_PATHS, PolicyCache, PolicyError, PolicyIssue
from route_agent.policy.loader import merge_layers, parse_layer, validate
from route_agent.policy.strictness import lowered_issues, restrict
from route_agent.routing.decide import Decision
from route_agent.workspace.state import user_policy_path

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)

SOURCE = "route-agent"
VERIFY_SOURCE = "route-agent/verify"
ESCALATE_CODE = "escalate"
DRIFT_CODE = "classifier-drift"
LOWERED_CODE = "policy-lowers-protection"

LineLength = Any  # Callable[[int], int] | None: 0-based line -> its length, when the text is known


def register(server: RouteAgentServer) -> None:
    # Workspace diagnostics too: verification findings land in files that are not open (a failing
    # test), and a pull client asks only for open documents otherwise.
    server.feature(types.TEXT_DOCUMENT_DIAGNOSTIC,
                   types.DiagnosticOptions(identifier=SOURCE, inter_file_dependencies=True, workspace_diagnostics=True))(on_pull)
    server.feature(types.WORKSPACE_DIAGNOSTIC)(on_workspace_pull)


# --- pure builders ---------------------------------------------------------------------------


def _range(line0: int, length: int | None) -> types.Range:
    line0 = max(0, line0)
    return types.Range(start=types.Position(line0, 0), end=types.Position(line0, max(0, length or 0)))


def risk_notes(decision: Decision, rel_path: str, line_length: LineLength = None) -> list[types.Diagnostic]:
    """Information on lines that triggered an always-strong rule; Hint on other scored lines."""
    out: list[types.Diagnostic] = []
    strong_lines: set[int] = set()
    for hit in decision.always_strong:
        for ev in hit.evidence:
            if ev.path == rel_path and ev.line is not None:
                strong_lines.add(ev.line)
                detail = f" ({ev.detail})" if ev.detail else ""
                out.append(types.Diagnostic(
                    range=_range(ev.line - 1, line_length(ev.line - 1) if line_length else None),
                    message=(f"Always strong: {hit.reason}{detail}. "
                             f"Tasks touching this line route to the strong lane (risk {decision.risk_score})."),
                    severity=types.DiagnosticSeverity.Information, source=SOURCE, code=hit.condition,
                ))
    for contribution in decision.contributions:
        if contribution.signal == "files_touched":
            continue
        for ev in contribution.evidence:
            if ev.path == rel_path and ev.line is not None and ev.line not in strong_lines:
                out.append(types.Diagnostic(
                    range=_range(ev.line - 1, line_length(ev.line - 1) if line_length else None),
                    message=f"Risk +{contribution.points} ({contribution.signal}): {contribution.reason}",
                    severity=types.DiagnosticSeverity.Hint, source=SOURCE, code=contribution.signal,
                ))
    return out


def drift_hint(hit: DriftHit, line_length: LineLength = None) -> types.Diagnostic:
    what = "authentication or authorization" if hit.signal == "auth_code" else "schema"
    return types.Diagnostic(
        range=_range(hit.line - 1, line_length(hit.line - 1) if line_length else None),
        message=(f"{what} code ({hit.detector}) in {hit.path}, which no `paths.{hit.signal}` rule covers; "
                 f"add a path rule for {hit.suggested_glob} so the classifier keeps seeing it"),
        severity=types.DiagnosticSeverity.Hint, source=SOURCE, code=DRIFT_CODE,
        data={"kind": "drift", "signal": hit.signal, "glob": hit.suggested_glob, "path": hit.path},
    )


def finding_diagnostic(finding: Finding, run_id: str) -> types.Diagnostic:
    severity = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning,
                "info": types.DiagnosticSeverity.Information}[finding.severity]
    line0 = (finding.line or 1) - 1
    col = max(0, (finding.column or 1) - 1)
    return types.Diagnostic(
        range=types.Range(start=types.Position(line0, col), end=types.Position(line0, col)),
        message=finding.message, severity=severity, source=VERIFY_SOURCE, code=finding.check,
        data={"kind": "finding", "run_id": run_id},
    )


def escalation_message(record: RunRecord) -> str:
    n = len(record.failed_checks) or len({f.check for f in record.findings}) or 1
    return f"Fast lane failed {n} checks. Escalate to strong lane?"


def escalation_diagnostic(record: RunRecord) -> types.Diagnostic:
    line0 = record.anchor[1] if record.anchor else 0
    return types.Diagnostic(
        range=_range(line0, 0), message=escalation_message(record),
        severity=types.DiagnosticSeverity.Warning, source=VERIFY_SOURCE, code=ESCALATE_CODE,
        data={"kind": "escalate", "run_id": record.run_id},
    )


def _issue_diagnostic(issue: PolicyIssue, severity: types.DiagnosticSeverity, code: str) -> types.Diagnostic:
    return types.Diagnostic(
        range=_range(issue.line - 1, None) if issue.column <= 1 else types.Range(
            start=types.Position(issue.line - 1, issue.column - 1), end=types.Position(issue.line - 1, issue.column - 1)),
        message=issue.message, severity=severity, source=SOURCE, code=code,
    )


def policy_text_diagnostics(text: str, path: str, cache: PolicyCache) -> list[types.Diagnostic]:
    """Parse and validate a policy being edited, layered over the default; errors in this file.

    A repository's policy is also compared with the user's own layers: what it would lower is a
    warning at its line, as the CLI prints it (the setting is ignored)."""
    try:
        layer = parse_layer(text, path)
        trusted = [cache.default_layer()]
        if is_repo_policy_path(Path(path)):
            user = user_policy_path()
            if user.is_file():
                trusted.append(cache.layer(user))
            proposed = validate(merge_layers([*trusted, layer]), path)
            _, lowered = restrict(validate(merge_layers(trusted), path), proposed)
            return [_issue_diagnostic(issue, types.DiagnosticSeverity.Warning, LOWERED_CODE)
                    for issue in lowered_issues(lowered, layer)]
        validate(merge_layers([*trusted, layer]), path)
    except PolicyError as exc:
        return [_issue_diagnostic(issue, types.DiagnosticSeverity.Error, "policy") for issue in exc.issues if issue.file == path]
    return []


def is_repo_policy_path(candidate: Path) -> bool:
    posix = candidate.as_posix()
    return any(posix.endswith("/" + rel) for rel in REPO_POLICY_PATHS)


# --- policy documents --------------------------------------------------------------------------


def is_policy_document(ls: RouteAgentServer, uri: str) -> bool:
    path = uris.to_fs_path(uri)
    if path is None:
        return False
    candidate = Path(path)
    if ls.settings.policy_path is not None and candidate == ls.settings.policy_path:
        return True
    if candidate == user_policy_path():
        return True
    return is_repo_policy_path(candidate)


def _policy_store(ls: RouteAgentServer) -> dict[str, list[types.Diagnostic]]:
    return ls.policy_diagnostics


def schedule_policy_check(ls: RouteAgentServer, uri: str) -> None:
    doc = ls.document(uri)
    path = uris.to_fs_path(uri)
    if doc is None or path is None:
        return
    cache = next(iter(ls.folders.values())).policy_cache if ls.folders else PolicyCache()
    _policy_store(ls)[uri] = policy_text_diagnostics(doc.text, path, cache)
    deliver(ls)


def forget_policy_document(ls: RouteAgentServer, uri: str) -> None:
    if _policy_store(ls).pop(uri, None) is not None:
        deliver(ls)


# --- collection and delivery -------------------------------------------------------------------


def _line_length(ls: RouteAgentServer, uri: str) -> LineLength:
    doc = ls.document(uri)
    if doc is None:
        return None
    return lambda line0: len(doc.line(line0))


def collect(ls: RouteAgentServer) -> dict[str, list[types.Diagnostic]]:
    out: dict[str, list[types.Diagnostic]] = {}
    for folder in ls.folders.values():
        _collect_folder(ls, folder, out)
    for uri, diags in _policy_store(ls).items():
        out.setdefault(uri, []).extend(diags)
    return out


def _collect_folder(ls: RouteAgentServer, folder: FolderState, out: dict[str, list[types.Diagnostic]]) -> None:
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
            if uri and uri not in _policy_store(ls):
                out.setdefault(uri, []).append(_issue_diagnostic(warning, types.DiagnosticSeverity.Warning, LOWERED_CODE))
    if folder.policy_error is not None:
        for issue in folder.policy_error.issues:
            uri = uris.from_fs_path(issue.file)
            if uri and uri not in _policy_store(ls):
                out.setdefault(uri, []).append(types.Diagnostic(
                    range=_range(issue.line - 1, None), message=issue.message,
                    severity=types.DiagnosticSeverity.Error, source=SOURCE, code="policy"))
    record = ls.runs.latest(folder.uri)
    if record is not None:
        for finding in record.findings:
            if finding.path:
                out.setdefault(ls.uri_for(folder, finding.path), []).append(finding_diagnostic(finding, record.run_id))
        if record.can_escalate and record.anchor is not None:
            out.setdefault(ls.uri_for(folder, record.anchor[0]), []).append(escalation_diagnostic(record))


def _key(diags: list[types.Diagnostic]) -> tuple[Any, ...]:
    return tuple((d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character,
                  d.message, d.severity, d.source, d.code) for d in diags)


def deliver(ls: RouteAgentServer) -> None:
    """Recompute every diagnostic; push what changed, or bump versions and ask pull clients to refresh."""
    current = collect(ls)
    changed = False
    for uri in set(current) | set(ls.diagnostic_cache):
        new = current.get(uri, [])
        old = ls.diagnostic_cache.get(uri)
        if old is not None and _key(old) == _key(new):
            continue
        changed = True
        ls.diagnostic_versions[uri] = ls.diagnostic_versions.get(uri, 0) + 1
        if new:
            ls.diagnostic_cache[uri] = new
        else:
            ls.diagnostic_cache.pop(uri, None)
        if not ls.client.pull_diagnostics:
            doc = ls.document(uri)
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=new, version=doc.version if doc else None))
    if changed and ls.client.pull_diagnostics and ls.client.diagnostic_refresh:
        ls.workspace_diagnostic_refresh(None)


def on_pull(ls: RouteAgentServer, params: types.DocumentDiagnosticParams) -> types.DocumentDiagnosticReport:
    uri = params.text_document.uri
    result_id = f"{uri}#{ls.diagnostic_versions.get(uri, 0)}"
    if params.previous_result_id == result_id:
        return types.RelatedUnchangedDocumentDiagnosticReport(result_id=result_id)
    return types.RelatedFullDocumentDiagnosticReport(items=list(ls.diagnostic_cache.get(uri, [])), result_id=result_id)


def on_workspace_pull(ls: RouteAgentServer, params: types.WorkspaceDiagnosticParams) -> types.WorkspaceDiagnosticReport:
    """Every document that has or had diagnostics: unchanged where the client's result id is current,
    in full otherwise (an empty full report clears a document whose diagnostics went away)."""
    previous = {p.uri: p.value for p in params.previous_result_ids}
    items: list[types.WorkspaceFullDocumentDiagnosticReport | types.WorkspaceUnchangedDocumentDiagnosticReport] = []
    for uri, version in sorted(ls.diagnostic_versions.items()):
        result_id = f"{uri}#{version}"
        doc = ls.document(uri)
        doc_version = doc.version if doc else None
        if previous.get(uri) == result_id:
            items.append(types.WorkspaceUnchangedDocumentDiagnosticReport(uri=uri, result_id=result_id, version=doc_version))
        else:
            items.append(types.WorkspaceFullDocumentDiagnosticReport(
                uri=uri, items=list(ls.diagnostic_cache.get(uri, [])), result_id=result_id, version=doc_version))
    return types.WorkspaceDiagnosticReport(items=items)
