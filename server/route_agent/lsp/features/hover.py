"""textDocument/hover: the folder's latest risk, itemised, in any file of the change set.

Never waits for git: it reads the latest snapshot and says "(refreshing…)" when one is pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from route_agent.lsp.protocol import NOT_HANDLED
from route_agent.routing.decide import AlwaysStrong, Decision
from route_agent.signals import Evidence

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

REFRESHING = "(refreshing…)"
MAX_EVIDENCE_SHOWN = 8


def register(server: RouteAgentServer) -> None:
    server.feature(types.TEXT_DOCUMENT_HOVER)(on_hover)
    server.protocol.fast_requests[types.TEXT_DOCUMENT_HOVER] = lambda params: fast_hover(server, params)


def fast_hover(ls: RouteAgentServer, params: Any) -> Any:
    """Hover straight from the JSON params to a JSON result; odd shapes take the typed path."""
    try:
        uri = params["textDocument"]["uri"]
        line = params["position"]["line"]
        character = params["position"]["character"]
    except (TypeError, KeyError):
        return NOT_HANDLED
    if not isinstance(uri, str) or type(line) is not int or type(character) is not int or line < 0 or character < 0:
        return NOT_HANDLED
    text = hover_text(ls, uri, line)
    if text is None:
        return None
    markdown = ls.client.hover_markdown
    return {"contents": {"kind": "markdown" if markdown else "plaintext", "value": text if markdown else _plain(text)}}


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
    text = compute_hover(snapshot.decision, rel, line, refreshing=folder.refreshing)
    cache[key] = text
    return text


def _plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def on_hover(ls: RouteAgentServer, params: types.HoverParams) -> types.Hover | None:
    text = hover_text(ls, params.text_document.uri, params.position.line)
    if text is None:
        return None
    markdown = ls.client.hover_markdown
    kind = types.MarkupKind.Markdown if markdown else types.MarkupKind.PlainText
    return types.Hover(contents=types.MarkupContent(kind=kind, value=text if markdown else _plain(text)))


def always_strong_on_line(decision: Decision, rel_path: str, line0: int) -> list[AlwaysStrong]:
    return [hit for hit in decision.always_strong
            if any(ev.path == rel_path and ev.line == line0 + 1 for ev in hit.evidence)]


def compute_hover(decision: Decision, rel_path: str, line0: int, refreshing: bool = False) -> str | None:
    """Markdown: `Risk score: N -> <lane> lane`, the rule on this line first, then each contribution."""
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
