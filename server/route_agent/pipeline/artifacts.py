"""What a verified run becomes for review: a commit message with trailers, a pull request body.

Both are written from the stored run (`state_dir()/runs/<id>/meta.json`), so they say exactly what
was verified: the brief, the risk and its evidence, the lane and why, every attempt with its checks,
findings and verifier, the escalations and the cost. Everything passes the secret rules once more:
a pull request is public text.
"""

from __future__ import annotations

import json
from typing import Any

from route_agent.lanes.prompt import redact_text
from route_agent.ledger import open_ledger
from route_agent.workspace.commit import check_commit_possible, commit_patch, default_branch
from route_agent.workspace.git import Repo, WorkspaceError
from route_agent.workspace.worktree import ApplyResult, apply_to_user_tree, run_path

TRAILERS = ("Route-Agent-Run", "Route-Agent-Lane", "Route-Agent-Risk", "Route-Agent-Checks", "Route-Agent-Cost")


def load_run(run_id: str) -> dict[str, Any]:
    folder = run_path(run_id)
    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise WorkspaceError(f"no stored run {run_id} (looked in {folder}); runs are kept after a passing route") from None
    if not isinstance(meta, dict):
        raise WorkspaceError(f"the stored run {run_id} is damaged (meta.json is not an object)")
    return meta


def apply_run(repo: Repo, run_id: str, *, commit: bool = False, branch: str | None = None) -> tuple[ApplyResult, str | None, str]:
    """`route-agent apply [--commit]` for the CLI and the editor: the patch into the user's files and,
    with `commit`, a commit of exactly its paths on `branch` (default route-agent/RUN_ID). Refuses
    (WorkspaceError, PatchRejected) before writing anything. Returns the result, the commit id (None
    without a commit or on a conflict) and the branch."""
    target = branch or default_branch(run_id)
    meta = load_run(run_id) if commit else None
    if meta is not None:
        check_commit_possible(repo, [str(p) for p in meta.get("paths") or []], target)
    result = apply_to_user_tree(repo, run_id)
    commit_id = commit_patch(repo, result.paths, target, commit_message(run_id, meta)) if meta is not None and result.applied else None
    return result, commit_id, target


def record_review(location: str | None, run_id: str, review: str, reason: str | None = None, commit_id: str | None = None) -> int:
    """Book the user's review of a run (accepted, or rejected and why) in the ledger; LedgerError when
    it cannot be written. The number of attempts marked (0: the ledger has no passing attempt of it)."""
    ledger = open_ledger(location)
    try:
        return ledger.set_review(run_id, review, reason=reason, commit_id=commit_id)
    finally:
        ledger.close()


def _attempts(meta: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in meta.get("attempts") or [] if isinstance(a, dict)]


def _final(meta: dict[str, Any]) -> dict[str, Any]:
    passed = [a for a in _attempts(meta) if a.get("passed")]
    return passed[-1] if passed else (_attempts(meta)[-1] if _attempts(meta) else {})


def _cost(meta: dict[str, Any]) -> float:
    return sum(float(a.get("cost_usd") or 0.0) for a in _attempts(meta))


def _checks_line(attempt: dict[str, Any]) -> str:
    checks = [c for c in attempt.get("checks") or [] if isinstance(c, dict)]
    return ", ".join(f"{c.get('name', '?')} {c.get('status', '?')}" for c in checks) or "none"


def _subject(brief: str) -> str:
    first = next((line.strip() for line in brief.splitlines() if line.strip()), "route-agent fix")
    first = first[0].upper() + first[1:]
    return first if len(first) <= 72 else first[:69].rstrip() + "..."


def _clean(text: str) -> str:
    return redact_text(text, "artifact")[0]


def commit_message(run_id: str, meta: dict[str, Any]) -> str:
    """Subject, the brief, and trailers that `git interpret-trailers` parses."""
    brief = _clean(str(meta.get("brief") or "")).strip()
    final = _final(meta)
    trailers = {
        "Route-Agent-Run": run_id,
        "Route-Agent-Lane": f"{final.get('lane', meta.get('lane', '?'))} ({final.get('model', '?')})",
        "Route-Agent-Risk": str(meta.get("risk_score", "?")),
        "Route-Agent-Checks": _checks_line(final),
        "Route-Agent-Cost": f"${_cost(meta):.4f}",
    }
    body = "\n".join(f"{key}: {' '.join(value.split())}" for key, value in trailers.items())
    return f"{_subject(brief)}\n\n{brief}\n\n{body}\n" if brief else f"{_subject(brief)}\n\n{body}\n"


def pr_body(run_id: str, meta: dict[str, Any]) -> str:
    """A Markdown pull request description of the run."""
    brief = _clean(str(meta.get("brief") or "")).strip()
    out = [f"## {_subject(brief)}", "", "> " + brief.replace("\n", "\n> ") if brief else "> (no brief)", ""]
    out += ["### Risk", "", f"**Risk score {meta.get('risk_score', '?')}**, lane **{meta.get('lane', '?')}**: "
            f"{meta.get('lane_reason', 'not recorded')} (plan: {meta.get('plan', 'cascade')}).", ""]
    contributions = [c for c in meta.get("contributions") or [] if isinstance(c, dict)]
    if contributions:
        out += ["| signal | points | reason | evidence |", "|---|---|---|---|"]
        for c in contributions:
            evidence = "; ".join(_evidence(e) for e in (c.get("evidence") or [])[:3])
            out.append(f"| {c.get('signal')} | +{c.get('points')} | {_cell(str(c.get('reason', '')))} | {_cell(evidence)} |")
        out.append("")
    for reason in meta.get("always_strong") or []:
        out.append(f"- always strong: {_cell(str(reason))}")
    out += ["### Attempts", ""]
    for attempt in _attempts(meta):
        verdict = "passed" if attempt.get("passed") else "failed"
        out.append(f"{attempt.get('attempt', '?')}. **{attempt.get('lane')}** lane, `{attempt.get('model')}` "
                   f"({attempt.get('executor', 'oneshot')}): {verdict}; checks: {_checks_line(attempt)}; "
                   f"${float(attempt.get('cost_usd') or 0):.4f}, {float(attempt.get('latency_seconds') or 0):.1f} s")
        verifier = attempt.get("verifier")
        if isinstance(verifier, dict):
            confidence = verifier.get("confidence")
            shown = f"{confidence:.2f}" if isinstance(confidence, int | float) else "?"
            out.append(f"   - verifier: {verifier.get('verdict')}, confidence {shown}: {_cell(str(verifier.get('summary') or ''))}")
        for finding in (attempt.get("findings") or [])[:10]:
            if isinstance(finding, dict):
                where = finding.get("path") or finding.get("check", "")
                line = f":{finding['line']}" if finding.get("line") else ""
                out.append(f"   - [{finding.get('kind', 'check')}/{finding.get('rule') or finding.get('check')}] "
                           f"{where}{line}: {_cell(str(finding.get('message', '')))}")
        if attempt.get("escalated"):
            out.append(f"   - escalated: {', '.join(attempt.get('escalation_reasons') or []) or 'yes'}")
    out += ["", f"**Cost**: ${_cost(meta):.4f} over {len(_attempts(meta))} attempt(s). Run `{run_id}`, verified by route-agent "
            "(checks run from scratch on the worktree diff)."]
    return _clean("\n".join(out)) + "\n"


def _evidence(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = item.get("path", "")
    if item.get("line"):
        where += f":{item['line']}"
    detail = item.get("detail")
    return f"{where} {detail}".strip() if detail else where


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())[:300]
