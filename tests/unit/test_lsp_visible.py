"""lsp/visible.py: every outgoing text a user reads has its invisible characters written out."""

from __future__ import annotations

from lsprotocol import types

from route_agent.lsp.visible import visible, visible_diagnostics, visible_params

HOSTILE = "ok\x1b]0;title\x07 \u202eevil\u2066 zero\u200bwidth\x9b\n\tkept"


def test_visible_writes_out_controls_bidi_and_zero_width_but_keeps_newline_and_tab() -> None:
    assert visible(HOSTILE) == "ok\\x1b]0;title\\x07 \\u202eevil\\u2066 zero\\u200bwidth\\x9b\n\tkept"
    assert visible("plain: café → ok") == "plain: café → ok"


def test_every_user_visible_message_kind_is_cleaned() -> None:
    show = visible_params("window/showMessage", types.ShowMessageParams(types.MessageType.Info, HOSTILE))
    log = visible_params("window/logMessage", types.LogMessageParams(types.MessageType.Log, HOSTILE))
    ask = visible_params("window/showMessageRequest", types.ShowMessageRequestParams(
        types.MessageType.Warning, HOSTILE, actions=[types.MessageActionItem(title="Go\u202e")]))
    begin = visible_params("$/progress", types.ProgressParams("t", types.WorkDoneProgressBegin(title=HOSTILE, message=HOSTILE)))
    report = visible_params("$/progress", types.ProgressParams("t", types.WorkDoneProgressReport(message=HOSTILE)))
    end = visible_params("$/progress", types.ProgressParams("t", types.WorkDoneProgressEnd(message=None)))
    diag = types.Diagnostic(range=types.Range(types.Position(0, 0), types.Position(0, 1)), message=HOSTILE)
    push = visible_params("textDocument/publishDiagnostics", types.PublishDiagnosticsParams("file:///x", [diag]))
    texts = [show.message, log.message, ask.message, ask.actions[0].title, begin.value.title, begin.value.message,
             report.value.message, push.diagnostics[0].message, visible_diagnostics([diag])[0].message]
    for text in texts:
        assert not any(c in text for c in "\x1b\x07\u202e\u2066\u200b\x9b"), text
    assert end.value.message is None
    other = {"anything": HOSTILE}
    assert visible_params("routeAgent/riskChanged", other) is other, "data messages are not text for a user: unchanged"
