"""The diagnostics route-agent shows, built from plain values: risk notes, classifier drift,
verification findings, the escalation prompt and policy issues. Pure; delivery is state/diagnostics.py."""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from route_agent.lsp.state.folders import DriftHit
from route_agent.lsp.state.runs import RunRecord
from route_agent.policy import PolicyIssue
from route_agent.routing.decide import Decision
from route_agent.verify.findings import Finding

SOURCE = "route-agent"

VERIFY_SOURCE = "route-agent/verify"

ESCALATE_CODE = "escalate"

DRIFT_CODE = "classifier-drift"

LOWERED_CODE = "policy-lowers-protection"

LineLength = Any  # Callable[[int], int] | None: 0-based line -> its length, when the text is known


def line_range(line0: int, length: int | None) -> types.Range:
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
                    range=line_range(ev.line - 1, line_length(ev.line - 1) if line_length else None),
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
                    range=line_range(ev.line - 1, line_length(ev.line - 1) if line_length else None),
                    message=f"Risk +{contribution.points} ({contribution.signal}): {contribution.reason}",
                    severity=types.DiagnosticSeverity.Hint, source=SOURCE, code=contribution.signal,
                ))
    return out


def drift_hint(hit: DriftHit, line_length: LineLength = None) -> types.Diagnostic:
    what = "authentication or authorization" if hit.signal == "auth_code" else "schema"
    return types.Diagnostic(
        range=line_range(hit.line - 1, line_length(hit.line - 1) if line_length else None),
        message=(f"{what} code ({hit.detector}) in {hit.path}, which no `paths.{hit.signal}` rule covers; "
                 f"add a path rule for {hit.suggested_glob} so the classifier keeps seeing it"),
        severity=types.DiagnosticSeverity.Hint, source=SOURCE, code=DRIFT_CODE,
        data={"kind": "drift", "signal": hit.signal, "glob": hit.suggested_glob, "path": hit.path},
    )


def finding_diagnostic(finding: Finding, run_id: str) -> types.Diagnostic:
    severity = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning,
                "info": types.DiagnosticSeverity.Information, "hint": types.DiagnosticSeverity.Information}[finding.severity]
    line0 = (finding.line or 1) - 1
    col = max(0, (finding.column or 1) - 1)
    return types.Diagnostic(
        range=types.Range(start=types.Position(line0, col), end=types.Position(line0, col)),
        message=finding.message, severity=severity, source=VERIFY_SOURCE, code=finding.check,
        data={"kind": "finding", "run_id": run_id},
    )


def plural(n: int, noun: str) -> str:
    """`1 check`, `2 checks`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def escalation_message(record: RunRecord) -> str:
    n = len(record.failed_checks) or len({f.check for f in record.findings}) or 1
    return f"Fast lane failed {plural(n, 'check')}. Escalate to strong lane?"


def escalation_diagnostic(record: RunRecord) -> types.Diagnostic:
    line0 = record.anchor[1] if record.anchor else 0
    return types.Diagnostic(
        range=line_range(line0, 0), message=escalation_message(record),
        severity=types.DiagnosticSeverity.Warning, source=VERIFY_SOURCE, code=ESCALATE_CODE,
        data={"kind": "escalate", "run_id": record.run_id},
    )


def issue_diagnostic(issue: PolicyIssue, severity: types.DiagnosticSeverity, code: str) -> types.Diagnostic:
    return types.Diagnostic(
        range=line_range(issue.line - 1, None) if issue.column <= 1 else types.Range(
            start=types.Position(issue.line - 1, issue.column - 1), end=types.Position(issue.line - 1, issue.column - 1)),
        message=issue.message, severity=severity, source=SOURCE, code=code,
    )
