"""textDocument/codeAction (codeAction/resolve is code_action_resolve.py).

Offered on any range of a file in a folder with a risk snapshot: route a fix (auto lane, or the
strong lane), explain the risk; after a failed fast run, escalate; after a pass, apply or show the
patch; on a classifier-drift hint, add the path rule to the repository policy. Edits are computed in
`codeAction/resolve` when the client can resolve `edit`, eagerly otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from route_agent.lsp.diagnostic_items import DRIFT_CODE, VERIFY_SOURCE
from route_agent.lsp.edits import command, fill_edit
from route_agent.lsp.state.folders import FolderState
from route_agent.lsp.state.runs import RunRecord

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer


KIND = types.CodeActionKind.QuickFix
OPTIONS = types.CodeActionOptions(code_action_kinds=[KIND], resolve_provider=True)


def brief_from(uri: str, rel: str, rng: types.Range, context: types.CodeActionContext, selection: str) -> str:
    """The task brief: the diagnostics in range, else the selected text, plus the file."""
    messages = [f"{d.source or 'diagnostic'}: {d.message} (line {d.range.start.line + 1})" for d in context.diagnostics]
    if messages:
        body = "Fix:\n" + "\n".join(f"- {m}" for m in messages)
    elif selection.strip():
        body = f"Fix the code in lines {rng.start.line + 1}-{rng.end.line + 1}:\n{selection[:4000]}"
    else:
        body = f"Fix the problem at line {rng.start.line + 1}"
    return f"{body}\nFile: {rel}"


def compute_code_actions(
    folder: FolderState, rel: str, uri: str, rng: types.Range, context: types.CodeActionContext,
    selection: str, record: RunRecord | None,
) -> list[tuple[str, str, dict[str, Any], list[types.Diagnostic] | None]]:
    """(title, command, argument, diagnostics) for every action that applies here."""
    actions: list[tuple[str, str, dict[str, Any], list[types.Diagnostic] | None]] = []
    snapshot = folder.snapshot
    base = {"folder": folder.uri, "uri": uri, "path": rel,
            "range": {"start": {"line": rng.start.line, "character": rng.start.character},
                      "end": {"line": rng.end.line, "character": rng.end.character}}}
    brief = brief_from(uri, rel, rng, context, selection)
    if snapshot is not None:
        decision = snapshot.decision
        refreshing = " (refreshing…)" if folder.refreshing else ""
        actions.append((f"Route fix via {decision.lane} lane (risk {decision.risk_score}){refreshing}", "route-agent.routeFix",
                        {**base, "lane": "auto", "brief": brief}, None))
        actions.append(("Route fix via strong lane", "route-agent.routeFix", {**base, "lane": "strong", "brief": brief}, None))
        actions.append(("Explain risk", "route-agent.explainRisk", {"folder": folder.uri, "path": rel}, None))
        for hit in snapshot.drift:
            if hit.path == rel:
                drift = [d for d in context.diagnostics if d.code == DRIFT_CODE] or None
                actions.append((f"Add path rule for {hit.suggested_glob}", "route-agent.addPathRule",
                                {"folder": folder.uri, "signal": hit.signal, "glob": hit.suggested_glob}, drift))
    if record is not None:
        failed = [d for d in context.diagnostics if d.source == VERIFY_SOURCE]
        if record.can_escalate:
            actions.append(("Escalate to strong lane", "route-agent.escalate", {"run_id": record.run_id}, failed or None))
        if record.can_apply:
            actions.append(("Apply verified patch", "route-agent.applyPatch", {"run_id": record.run_id}, None))
        if record.patch:
            actions.append(("Show patch", "route-agent.showPatch", {"run_id": record.run_id}, None))
    return actions


def handle(ls: RouteAgentServer, params: types.CodeActionParams) -> list[types.Command | types.CodeAction] | None:
    uri = params.text_document.uri
    where = ls.locate(uri)
    if where is None:
        return None
    folder, rel = where
    doc = ls.document(uri)
    selection = ""
    if doc is not None and params.range.start != params.range.end:
        first = params.range.start.line
        selection = "".join(doc.line(n) + "\n" for n in range(first, min(params.range.end.line + 1, first + 200)))
    record = ls.runs.latest(folder.uri)
    found = compute_code_actions(folder, rel, uri, params.range, params.context, selection, record)
    if not ls.client.code_action_literals:
        return [command(title, name, arg) for title, name, arg, _ in found]
    out: list[types.Command | types.CodeAction] = []
    for title, name, arg, diags in found:
        action = types.CodeAction(title=title, kind=KIND, diagnostics=diags, command=command(title, name, arg))
        if name in ("route-agent.addPathRule", "route-agent.applyPatch"):
            # The edit is the action: resolve computes it; a client that cannot resolve gets it now.
            action.command = None
            action.data = {"command": name, "argument": arg}
            if not ls.client.code_action_resolve_edit:
                fill_edit(ls, action)
        out.append(action)
    return out
