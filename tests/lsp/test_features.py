"""End to end, once per client profile: diagnostics (push or pull), code actions, drift, policy."""

from __future__ import annotations

from pathlib import Path

from lsp_helpers import AUTH_FILE, wait_for, wait_ready
from lsprotocol import types
from pytest_lsp import LanguageClient


def open_doc(client: LanguageClient, path: Path, text: str | None = None, language: str = "python") -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id=language, version=1, text=path.read_text() if text is None else text)))
    return uri


def close_doc(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))


def pulls(client: LanguageClient) -> bool:
    return getattr(client, "profile", "") == "neovim"


async def diagnostics_for(client: LanguageClient, uri: str, predicate=bool) -> list[types.Diagnostic]:  # type: ignore[no-untyped-def]
    """Pull (Neovim profile) or wait for a push (VS Code profile)."""
    if pulls(client):
        async def pulled() -> tuple[list[types.Diagnostic]] | None:
            report = await client.text_document_diagnostic_async(types.DocumentDiagnosticParams(
                text_document=types.TextDocumentIdentifier(uri=uri)))
            assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
            assert report.result_id
            return (list(report.items),) if predicate(report.items) else None  # a 1-tuple: an empty list may match

        return (await wait_for(pulled, what="pulled diagnostics"))[0]  # type: ignore[no-any-return]
    await wait_for(lambda: uri in client.diagnostics and predicate(client.diagnostics[uri]))
    return list(client.diagnostics[uri])


async def test_always_strong_line_gets_route_agent_diagnostic(client: LanguageClient, session_root: Path) -> None:
    uri = open_doc(client, session_root / "services" / "identity" / "tokens.py")
    await wait_ready(client)
    diags = await diagnostics_for(client, uri, lambda ds: any(d.source == "route-agent" and d.code == "auth_code" for d in ds))
    line = AUTH_FILE.splitlines().index('    claims = jwt.decode(request.token, KEY, algorithms=["HS256"])')
    strong = [d for d in diags if d.code == "auth_code"]
    assert strong[0].range.start.line == line
    assert strong[0].severity == types.DiagnosticSeverity.Information
    drift = [d for d in diags if d.code == "classifier-drift"]
    assert drift and drift[0].severity == types.DiagnosticSeverity.Hint
    assert "services/identity/**" in drift[0].message


async def test_pull_result_id_is_stable_until_something_changes(client: LanguageClient, session_root: Path) -> None:
    if not pulls(client):
        assert not client.capabilities.text_document.diagnostic  # type: ignore[union-attr]
        return
    uri = open_doc(client, session_root / "services" / "identity" / "tokens.py")
    await wait_ready(client)
    await diagnostics_for(client, uri)
    first = await client.text_document_diagnostic_async(types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    again = await client.text_document_diagnostic_async(types.DocumentDiagnosticParams(
        text_document=types.TextDocumentIdentifier(uri=uri), previous_result_id=first.result_id))
    assert isinstance(again, types.RelatedUnchangedDocumentDiagnosticReport)
    assert again.result_id == first.result_id


async def test_code_actions_offer_routed_fix_and_drift_rule(client: LanguageClient, session_root: Path) -> None:
    uri = open_doc(client, session_root / "services" / "identity" / "tokens.py")
    await wait_ready(client)
    diags = await diagnostics_for(client, uri, lambda ds: any(d.code == "classifier-drift" for d in ds))
    drift = [d for d in diags if d.code == "classifier-drift"]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=drift[0].range,
        context=types.CodeActionContext(diagnostics=drift)))
    assert actions
    titles = [a.title for a in actions]
    assert any(t.startswith("Route fix via strong lane (risk ") for t in titles)
    # The change set is on the strong lane already: one strong-lane route fix, not two.
    assert "Route fix via strong lane" not in titles and "Explain risk" in titles and "Refresh risk" in titles
    rule = next(a for a in actions if a.title == "Add path rule for services/identity/**")
    assert isinstance(rule, types.CodeAction)
    if rule.edit is None:  # VS Code resolves the edit lazily
        rule = await client.code_action_resolve_async(rule)
    if rule.edit is not None:
        change_kinds = [type(c).__name__ for c in (rule.edit.document_changes or [])]
        text = "".join(e.new_text for c in rule.edit.document_changes or [] if isinstance(c, types.TextDocumentEdit) for e in c.edits)
        text += "".join(e.new_text for edits in (rule.edit.changes or {}).values() for e in edits)
        assert "services/identity/**" in text and "auth_code" in text
        assert "CreateFile" in change_kinds or rule.edit.changes
    else:
        assert rule.command is not None and rule.command.command == "route-agent.addPathRule"


async def test_explain_risk_command(client: LanguageClient, session_root: Path) -> None:
    await wait_ready(client)
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="route-agent.explainRisk", arguments=[{"folder": session_root.as_uri(), "path": "services/identity/tokens.py"}]))
    assert "Risk score:" in result["markdown"] and result["lane"] == "strong"


async def test_command_with_invalid_arguments_is_an_error(client: LanguageClient) -> None:
    import pytest
    from pygls.exceptions import JsonRpcException

    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="route-agent.escalate", arguments=[{"nope": 1}]))


async def test_policy_file_being_edited_gets_live_diagnostics(client: LanguageClient, session_root: Path) -> None:
    policy = session_root / ".route-agent" / "policy.yaml"
    policy.parent.mkdir(exist_ok=True)
    bad = "routing:\n  fast_max_score: 6\n  fastest: true\n"
    uri = open_doc(client, policy, bad, language="yaml")
    try:
        diags = await diagnostics_for(client, uri, lambda ds: any("fastest" in d.message for d in ds))
        assert diags[0].range.start.line == 2 and diags[0].source == "route-agent"
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(2, 0), end=types.Position(3, 0)), text="")]))
        await diagnostics_for(client, uri, lambda ds: not ds)
    finally:
        close_doc(client, uri)


async def test_unsaved_buffer_counts_in_the_risk(client: LanguageClient, session_root: Path) -> None:
    path = session_root / "app" / "util.py"
    uri = open_doc(client, path)
    before = await wait_ready(client)
    generation = before["folders"][0]["generation"]
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(0, 0), end=types.Position(0, 0)),
            text="import hmac\nMAC = hmac.new\n")]))  # auth code: a message signature
    after = await wait_ready(client, generation)
    hover = await client.text_document_hover_async(types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri),
                                                                     position=types.Position(0, 0)))
    assert hover is not None and "app/util.py:1" in hover.contents.value  # type: ignore[union-attr]
    assert after["folders"][0]["generation"] > generation
    close_doc(client, uri)


async def test_did_change_storm_then_hover(client: LanguageClient, session_root: Path) -> None:
    path = session_root / "app" / "big.py"
    text = "".join(f"value_{i} = {i}\n" for i in range(10_000))
    uri = open_doc(client, path, text)
    for version in range(2, 10_002):
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(5000, 0), end=types.Position(5000, 1)), text="v")]))
    result = await client.text_document_hover_async(types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri),
                                                                      position=types.Position(5000, 0)))
    assert result is None or "Risk score" in result.contents.value or "computing" in result.contents.value  # type: ignore[union-attr]
    info = await wait_ready(client)
    assert "app/big.py" in info["folders"][0]["paths"]
    close_doc(client, uri)


async def test_watchers_registered_only_with_dynamic_registration(client: LanguageClient) -> None:
    await wait_ready(client)
    registrations = getattr(client, "registrations", [])
    methods = [r.method for r in registrations]
    if client.capabilities.workspace.did_change_watched_files.dynamic_registration:  # type: ignore[union-attr]
        await wait_for(lambda: types.WORKSPACE_DID_CHANGE_WATCHED_FILES in [r.method for r in getattr(client, "registrations", [])])
    else:
        assert types.WORKSPACE_DID_CHANGE_WATCHED_FILES not in methods
