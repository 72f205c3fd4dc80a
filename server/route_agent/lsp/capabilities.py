"""The client's capabilities, read once at initialize into the few flags the features need."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types


@dataclass(frozen=True, slots=True)
class ClientFeatures:
    hover_markdown: bool = False
    pull_diagnostics: bool = False
    diagnostic_refresh: bool = False
    code_action_literals: bool = False
    code_action_resolve_edit: bool = False
    code_action_disabled: bool = False
    """The client shows a `disabled` action greyed out with its reason; without it, a disabled action
    looks like any other and does nothing when picked, so it is left out."""
    watched_files_dynamic: bool = False
    configuration: bool = False
    work_done_progress: bool = False
    show_document: bool = False
    apply_edit: bool = False
    document_changes: bool = False
    create_files: bool = False

    @classmethod
    def from_capabilities(cls, caps: types.ClientCapabilities) -> ClientFeatures:
        text = caps.text_document
        workspace = caps.workspace
        window = caps.window
        hover = text.hover if text else None
        code_action = text.code_action if text else None
        resolve = code_action.resolve_support if code_action else None
        edit = workspace.workspace_edit if workspace else None
        watched = workspace.did_change_watched_files if workspace else None
        return cls(
            hover_markdown=bool(hover and hover.content_format and types.MarkupKind.Markdown in hover.content_format),
            pull_diagnostics=bool(text and text.diagnostic is not None),
            diagnostic_refresh=bool(workspace and workspace.diagnostics and workspace.diagnostics.refresh_support),
            code_action_literals=bool(code_action and code_action.code_action_literal_support is not None),
            code_action_resolve_edit=bool(resolve and "edit" in resolve.properties),
            code_action_disabled=bool(code_action and code_action.disabled_support),
            watched_files_dynamic=bool(watched and watched.dynamic_registration),
            configuration=bool(workspace and workspace.configuration),
            work_done_progress=bool(window and window.work_done_progress),
            show_document=bool(window and window.show_document and window.show_document.support),
            apply_edit=bool(workspace and workspace.apply_edit),
            document_changes=bool(edit and edit.document_changes),
            create_files=bool(edit and edit.resource_operations and types.ResourceOperationKind.Create in edit.resource_operations),
        )
