"""The folder's risk for people: the hover text (also `route-agent.explainRisk`) and the summary
for status bars (`route-agent.riskSummary` and the `routeAgent/riskChanged` notification)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from route_agent.lsp.state.folders import FolderState
from route_agent.policy.toolchain import NO_CHECKS_NOTE
from route_agent.routing.decide import AlwaysStrong, Decision
from route_agent.signals import Evidence

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

REFRESHING = "(refreshing…)"

MAX_EVIDENCE_SHOWN = 8

NOTIFICATION = "routeAgent/riskChanged"


def hover_text(ls: RouteAgentServer, uri: str, line: int) -> str | None:
    where = ls.locate(uri)
    if where is None:
        return None
    folder, rel = where
    snapshot = folder.snapshot
    if snapshot is None:
        if folder.refreshing:
            return f"route-agent: computing the risk {REFRESHING}"
        if folder.error:
            return f"route-agent: {folder.error}"
        return None
    key = (snapshot.generation, uri, line, folder.refreshing)
    cache = ls.hover_cache
    if key in cache:
        return cache[key]
    if len(cache) > 512 or (cache and next(iter(cache))[0] != snapshot.generation):
        cache.clear()
    checks = getattr(snapshot.policy.policy.verification, snapshot.decision.lane)
    text = compute_hover(snapshot.decision, rel, line, refreshing=folder.refreshing,
                         verification=" && ".join(" ".join(c.run) for c in checks) or None)
    cache[key] = text
    return text


def plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def always_strong_on_line(decision: Decision, rel_path: str, line0: int) -> list[AlwaysStrong]:
    return [hit for hit in decision.always_strong
            if any(ev.path == rel_path and ev.line == line0 + 1 for ev in hit.evidence)]


def compute_hover(decision: Decision, rel_path: str, line0: int, refreshing: bool = False,
                  verification: str | None = "") -> str | None:
    """Markdown: `Risk score: N -> <lane> lane`, the rule on this line first, then each contribution.
    `verification` is the lane's checks as one line (None: none configured or detected; "": not shown)."""
    if rel_path not in decision.signals.paths:
        return None
    title = f"**Risk score: {decision.risk_score} -> {decision.lane} lane**"
    if refreshing:
        title += f" {REFRESHING}"
    parts = [title]
    here = always_strong_on_line(decision, rel_path, line0)
    for hit in here:
        evidence = next(ev for ev in hit.evidence if ev.path == rel_path and ev.line == line0 + 1)
        parts.append(f"**Always strong on this line: `{hit.condition}`** ({hit.reason}): {_evidence(evidence)}")
    parts.append(f"Lane: {decision.lane_reason}")
    if verification is None:
        parts.append(f"Verification: none found; {NO_CHECKS_NOTE.split(': ', 1)[1]}")
    elif verification:
        parts.append(f"Verification: `{verification}`")
    if decision.plan is not None:
        plan = f"Plan: `{decision.plan.plan}`"
        p = decision.plan.prediction
        if p is not None:
            plan += (f" (predicted: fast passes {p.fast:.0%}, strong passes {p.strong:.0%}, "
                     f"strong after a failed fast attempt {p.strong_after_fast_failed:.0%})")
        parts.append(plan)
    items = []
    for contribution in decision.contributions:
        items.append(f"- `{contribution.signal}` **+{contribution.points}**: {contribution.reason}")
        shown = _ordered(contribution.evidence, rel_path)[:MAX_EVIDENCE_SHOWN]
        items.extend(f"  - {_evidence(ev)}" for ev in shown)
        if len(contribution.evidence) > len(shown):
            items.append(f"  - … {len(contribution.evidence) - len(shown)} more")
    if items:
        parts.append("\n".join(items))
    others = [hit for hit in decision.always_strong if hit not in here]
    if others:
        parts.append("Always strong: " + "; ".join(f"`{h.condition}` ({h.reason})" for h in others))
    return "\n\n".join(parts)


def _ordered(evidence: tuple[Evidence, ...], rel_path: str) -> list[Evidence]:
    """This file's evidence first."""
    return sorted(evidence, key=lambda ev: ev.path != rel_path)


def _evidence(ev: Evidence) -> str:
    where = ev.path or ""
    if ev.line is not None:
        where += f":{ev.line}"
    bits = [f"`{where}`" if where else ""]
    if ev.detail:
        bits.append(ev.detail)
    if ev.excerpt:
        bits.append(f"`{ev.excerpt.replace('`', chr(39))}`")
    return " ".join(b for b in bits if b)


def summary(ls: RouteAgentServer, folder: FolderState) -> dict[str, Any]:
    """The folder's latest risk, as the contract in client-vscode/README.md describes it."""
    snap = folder.snapshot
    decision = snap.decision if snap else None
    approved = snap.policy_approved if snap is not None else None
    return {
        "folderUri": folder.uri,
        "riskScore": decision.risk_score if decision else None,
        "lane": decision.lane if decision else None,
        "alwaysStrong": [str(hit) for hit in decision.always_strong] if decision else [],
        "contributions": [c.as_dict() for c in decision.contributions] if decision else [],
        "files": list(snap.change_set.paths) if snap else [],
        "refreshing": folder.refreshing,
        "error": folder.error,
        "policyApproved": approved,
        "policyWarnings": [str(w) for w in snap.policy.warnings] if snap else [],
    }


def notify(ls: RouteAgentServer, folder: FolderState) -> None:
    if ls.settings.risk_notifications:
        ls.protocol.notify(NOTIFICATION, summary(ls, folder))
