"""Text from outside shown in the editor, with its invisible characters made visible.

A check's output, a model's reply, a repository's file names, lines and policy text reach the user
as diagnostics, messages, progress and prompts. Editors render them as text, so an escape sequence
cannot drive a terminal there as it could in the CLI (cli/terminal.py), but some editors echo
messages in a terminal UI, and bidi controls (U+202A-U+202E, U+2066-U+2069) and zero-width
characters make a message read differently from what it says ("Trojan Source"). So every control
character but newline and tab, DEL, the C1 controls, the bidi controls and the zero-width and
invisible format characters are written out as `\\xNN` / `\\uNNNN`.

    visible(text) -> str
    visible_diagnostics(diags) -> list[Diagnostic]       # the diagnostics store applies it (push and pull)
    visible_params(method, params) -> params             # the protocol applies it to every outgoing message
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs
from lsprotocol import types

__all__ = ["visible", "visible_diagnostics", "visible_params"]

_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every invisible or direction-changing character written out."""
    if not _INVISIBLE.search(text):
        return text
    return _INVISIBLE.sub(_shown, text)


def visible_diagnostics(diags: Sequence[types.Diagnostic]) -> list[types.Diagnostic]:
    return [d if not _INVISIBLE.search(d.message) else attrs.evolve(d, message=visible(d.message)) for d in diags]


def _progress_value(value: Any) -> Any:
    if isinstance(value, (types.WorkDoneProgressBegin, types.WorkDoneProgressReport, types.WorkDoneProgressEnd)):
        changes: dict[str, Any] = {name: visible(text) for name in ("title", "message")
                                   if isinstance(text := getattr(value, name, None), str)}
        return attrs.evolve(value, **changes) if changes else value
    return value


def visible_params(method: str, params: Any) -> Any:
    """The outgoing message's user-visible text made visible; other messages pass unchanged."""
    if params is None:
        return params
    if method in ("window/showMessage", "window/logMessage") and isinstance(params, (types.ShowMessageParams, types.LogMessageParams)):
        return attrs.evolve(params, message=visible(params.message))
    if method == "window/showMessageRequest" and isinstance(params, types.ShowMessageRequestParams):
        actions = [attrs.evolve(a, title=visible(a.title)) for a in params.actions] if params.actions else params.actions
        return attrs.evolve(params, message=visible(params.message), actions=actions)
    if method == "$/progress" and isinstance(params, types.ProgressParams):
        return attrs.evolve(params, value=_progress_value(params.value))
    if method == "textDocument/publishDiagnostics" and isinstance(params, types.PublishDiagnosticsParams):
        return attrs.evolve(params, diagnostics=visible_diagnostics(params.diagnostics))
    return params
