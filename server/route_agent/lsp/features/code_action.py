"""textDocument/codeAction (codeAction/resolve is code_action_resolve.py).

Offered on any range of a file in a folder with a risk snapshot: route a fix (auto lane, or the
strong lane), explain the risk; after a failed fast run, escalate; after a pass, apply or show the
patch; on a classifier-drift hint, add the path rule to the repository policy. Edits are computed in
`codeAction/resolve` when the client can resolve `edit`, eagerly otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types

from route_agent.lsp.diagnostic_items import DRIFT_CODE, ESCALATE_CODE, VERIFY_SOURCE
from route_agent.lsp.edits import apply_blocker, command, fill_edit
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
        if decision.lane != "strong":  # on a strong-lane task the action above already is this one
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
            actions.append(("Apply and commit verified patch", "route-agent.applyAndCommit", {"run_id": record.run_id}, None))
        if record.status == "passed":
            actions.append(("Reject verified patch (record why)", "route-agent.rejectPatch", {"run_id": record.run_id}, None))
        if record.patch:
            actions.append(("Show patch", "route-agent.showPatch", {"run_id": record.run_id}, None))
    # The risk follows edits, saves, commits and checkouts by itself; this is for when it did not.
    actions.append(("Refresh risk", "route-agent.refresh", {"folder": folder.uri}, None))
    return actions


def preferred_action(found: list[tuple[str, str, dict[str, Any], list[types.Diagnostic] | None]],
                     context: types.CodeActionContext) -> int | None:
    """The one action Enter should pick in a menu: Escalate where the escalation prompt is, else the
    routed fix at the lane the risk chose."""
    names = [name for _, name, _, _ in found]
    if "route-agent.escalate" in names and any(d.code == ESCALATE_CODE for d in context.diagnostics):
        return names.index("route-agent.escalate")
    return names.index("route-agent.routeFix") if "route-agent.routeFix" in names else None


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
    if record is not None and record.can_apply:
        # After the patch is applied (or its files changed) the action cannot run: a client that
        # shows `disabled` gets it greyed with the reason; any other would show a dead entry.
        blocker = apply_blocker(ls, record)
        if blocker is not None:
            disabled = types.CodeActionDisabled(reason=blocker)
            if not ls.client.code_action_disabled or not ls.client.code_action_literals:
                found = [a for a in found if a[1] != "route-agent.applyPatch"]
        else:
            disabled = None
    else:
        disabled = None
    if not ls.client.code_action_literals:
        return [command(title, name, arg) for title, name, arg, _ in found]
    preferred = preferred_action(found, params.context)
    out: list[types.Command | types.CodeAction] = []
    for index, (title, name, arg, diags) in enumerate(found):
        action = types.CodeAction(title=title, kind=KIND, diagnostics=diags, command=command(title, name, arg),
                                  is_preferred=True if index == preferred else None)
        if name == "route-agent.applyPatch" and disabled is not None:
            action.command = None
            action.disabled = disabled
            out.append(action)
            continue
        if name in ("route-agent.addPathRule", "route-agent.applyPatch"):
            # The edit is the action: resolve computes it; a client that cannot resolve gets it now.
            action.command = None
            action.data = {"command": name, "argument": arg}
            if not ls.client.code_action_resolve_edit:
                fill_edit(ls, action)
        out.append(action)
    return out
