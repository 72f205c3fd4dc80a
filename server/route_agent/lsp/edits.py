"""Workspace edits the server offers: a verified patch, a path rule in the policy in force; and
code actions whose edit is computed late (`fill_edit`, for codeAction/resolve or eagerly)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls import uris

from route_agent.lsp.policy_edit import add_path_rule_insertion, new_policy_text
from route_agent.lsp.state.folders import FolderState
from route_agent.lsp.state.runs import RunRecord
from route_agent.policy import REPO_POLICY_PATHS

if TYPE_CHECKING:
    from route_agent.lsp.server import RouteAgentServer

logger = logging.getLogger(__name__)


def command(title: str, name: str, arg: dict[str, Any]) -> types.Command:
    return types.Command(title=title, command=name, arguments=[arg])


def fill_edit(ls: RouteAgentServer, action: types.CodeAction) -> None:
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
                    if ls.client.code_action_disabled:
                        action.disabled = types.CodeActionDisabled(reason=apply_blocker(ls, record) or "files changed since the run")
                        return
                    edit = None  # the command says why it cannot apply
        else:
            return
    except (KeyError, ValueError) as exc:
        logger.warning("cannot compute the edit for %s: %s", name, exc)
        edit = None
    if edit is None:
        # Fall back to the command, which does the same on the server side.
        action.command = command(action.title, str(name), dict(arg))
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
    target = policy_target(folder, ls.settings_for(folder).policy_path)
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


def apply_blocker(ls: RouteAgentServer, record: RunRecord) -> str | None:
    """Why the verified patch can no longer be applied (None: it can): it already was, or files it
    touches changed since the run."""
    folder = ls.folders.get(record.folder_uri)
    if folder is None:
        return "the workspace folder is gone"
    try:
        current = {rel: current_text(ls, folder, rel) for rel in record.base_texts}
    except ValueError as exc:
        return str(exc)
    conflicts = [rel for rel, base in record.base_texts.items() if current[rel] != base]
    if not conflicts:
        return None
    if all(current.get(rel) == new for rel, new in record.new_texts.items() if rel in current):
        return "the patch is already applied"
    return "files changed since the run: " + ", ".join(conflicts)


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
