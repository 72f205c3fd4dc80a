"""textDocument/codeAction and codeAction/resolve.

Offered on any range of a file in a folder with a risk snapshot: route a fix (auto lane, or the
strong lane), explain the risk; after a failed fast run, escalate; after a pass, apply or show the
patch; on a classifier-drift hint, add the path rule to the repository policy. Edits are computed in
`codeAction/resolve` when the client can resolve `edit`, eagerly otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls import uris

from route_agent.lsp.features import diagnostics
from route_agent.lsp.policy_edit import add_path_rule_insertion, new_policy_text
from route_agent.lsp.state.folders import FolderState
from route_agent.lsp.state.runs import RunRecord
from route_agent.policy import REPO_POLICY_PATHS

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)

KIND = types.CodeActionKind.QuickFix


def register(server: RouteAgentServer) -> None:
    options = types.CodeActionOptions(code_action_kinds=[KIND], resolve_provider=True)
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION, options)(on_code_action)
    server.feature(types.CODE_ACTION_RESOLVE)(on_resolve)


def _command(title: str, name: str, arg: dict[str, Any]) -> types.Command:
    return types.Command(title=title, command=name, arguments=[arg])


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
                drift = [d for d in context.diagnostics if d.code == diagnostics.DRIFT_CODE] or None
                actions.append((f"Add path rule for {hit.suggested_glob}", "route-agent.addPathRule",
                                {"folder": folder.uri, "signal": hit.signal, "glob": hit.suggested_glob}, drift))
    if record is not None:
        failed = [d for d in context.diagnostics if d.source == diagnostics.VERIFY_SOURCE]
        if record.can_escalate:
            actions.append(("Escalate to strong lane", "route-agent.escalate", {"run_id": record.run_id}, failed or None))
        if record.can_apply:
            actions.append(("Apply verified patch", "route-agent.applyPatch", {"run_id": record.run_id}, None))
        if record.patch:
            actions.append(("Show patch", "route-agent.showPatch", {"run_id": record.run_id}, None))
    return actions


def on_code_action(ls: RouteAgentServer, params: types.CodeActionParams) -> list[types.Command | types.CodeAction] | None:
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
        return [_command(title, name, arg) for title, name, arg, _ in found]
    out: list[types.Command | types.CodeAction] = []
    for title, name, arg, diags in found:
        action = types.CodeAction(title=title, kind=KIND, diagnostics=diags, command=_command(title, name, arg))
        if name in ("route-agent.addPathRule", "route-agent.applyPatch"):
            # The edit is the action: resolve computes it; a client that cannot resolve gets it now.
            action.command = None
            action.data = {"command": name, "argument": arg}
            if not ls.client.code_action_resolve_edit:
                _fill_edit(ls, action)
        out.append(action)
    return out


def on_resolve(ls: RouteAgentServer, action: types.CodeAction) -> types.CodeAction:
    if action.edit is None and isinstance(action.data, dict):
        _fill_edit(ls, action)
    return action


def _fill_edit(ls: RouteAgentServer, action: types.CodeAction) -> None:
    data = action.data if isinstance(action.data, dict) else {}
    name, arg = data.get("command"), data.get("argument") or {}
    try:
        if name == "route-agent.addPathRule":
            edit = add_path_rule_edit(ls, str(arg["folder"]), str(arg["signal"]), str(arg["glob"]))
        elif name == "route-agent.applyPatch":
            record = ls.runs.get(str(arg.get("run_id")))
            edit = None
            if record is not None:
                edit, conflicts = patch_edit(ls, record)
                if conflicts:
                    action.disabled = types.CodeActionDisabled(reason="files changed since the run: " + ", ".join(conflicts))
                    return
        else:
            return
    except (KeyError, ValueError) as exc:
        logger.warning("cannot compute the edit for %s: %s", name, exc)
        edit = None
    if edit is None:
        # Fall back to the command, which does the same on the server side.
        action.command = _command(action.title, str(name), dict(arg))
        return
    action.edit = edit


def policy_target(folder: FolderState, explicit: Path | None = None) -> Path:
    """The policy file in force for the folder: the `policyPath` setting when set (the repository's
    file is then ignored, so a rule added there would change nothing), else the repository's."""
    if explicit is not None:
        return explicit
    root = folder.snapshot.repo.root if folder.snapshot else folder.root
    for rel in REPO_POLICY_PATHS:
        if (root / rel).is_file():
            return root / rel
    return root / REPO_POLICY_PATHS[0]


def add_path_rule_edit(ls: RouteAgentServer, folder_uri: str, signal: str, glob: str) -> types.WorkspaceEdit | None:
    folder = ls.folders.get(folder_uri)
    if folder is None:
        raise KeyError(folder_uri)
    target = policy_target(folder, ls.settings.policy_path)
    uri = uris.from_fs_path(str(target)) or ""
    doc = ls.document(uri)
    if doc is not None or target.is_file():
        text = doc.text if doc is not None else target.read_text("utf-8")
        insertion = add_path_rule_insertion(text, signal, glob)
        if insertion is None:
            return None
        position = types.Position(insertion.line, insertion.column)
        text_edit = types.TextEdit(range=types.Range(start=position, end=position), new_text=insertion.text)
        if ls.client.document_changes:
            ident = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=doc.version if doc else None)
            return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=ident, edits=[text_edit])])
        return types.WorkspaceEdit(changes={uri: [text_edit]})
    if not (ls.client.document_changes and ls.client.create_files):
        return None
    start = types.Position(0, 0)
    return types.WorkspaceEdit(document_changes=[
        types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True)),
        types.TextDocumentEdit(text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None),
                               edits=[types.TextEdit(range=types.Range(start=start, end=start), new_text=new_policy_text(signal, glob))]),
    ])


def current_text(ls: RouteAgentServer, folder: FolderState, rel: str) -> str | None:
    doc = ls.document(ls.uri_for(folder, rel))
    if doc is not None:
        return doc.text
    root = folder.snapshot.repo.root if folder.snapshot else folder.root
    try:
        return (root / rel).read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read {rel}: {exc.strerror}") from None


def patch_edit(ls: RouteAgentServer, record: RunRecord) -> tuple[types.WorkspaceEdit | None, list[str]]:
    """The verified patch as a WorkspaceEdit, or the files that no longer match the patch's base."""
    folder = ls.folders.get(record.folder_uri)
    if folder is None:
        raise KeyError(record.folder_uri)
    conflicts = [rel for rel, base in record.base_texts.items() if current_text(ls, folder, rel) != base]
    if conflicts:
        return None, conflicts
    changes: list[types.TextDocumentEdit | types.CreateFile | types.RenameFile | types.DeleteFile] = []
    plain: dict[str, list[types.TextEdit]] = {}
    for rel, new_text in record.new_texts.items():
        uri = ls.uri_for(folder, rel)
        base = record.base_texts.get(rel)
        doc = ls.document(uri)
        if new_text is None:
            if ls.client.document_changes:
                changes.append(types.DeleteFile(uri=uri, options=types.DeleteFileOptions(ignore_if_not_exists=True)))
            continue
        old = base or ""
        lines = old.splitlines(keepends=True)
        end = types.Position(len(lines), 0)
        edit = types.TextEdit(range=types.Range(start=types.Position(0, 0), end=end), new_text=new_text)
        if base is None and ls.client.document_changes:
            changes.append(types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True)))
        if ls.client.document_changes:
            changes.append(types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=doc.version if doc else None), edits=[edit]))
        else:
            plain[uri] = [edit]
    if ls.client.document_changes:
        return types.WorkspaceEdit(document_changes=changes), []
    return types.WorkspaceEdit(changes=plain), []
