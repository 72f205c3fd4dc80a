"""End to end: hover, diagnostics, code actions, drift, policy diagnostics, robustness."""

from __future__ import annotations

from pathlib import Path

from lsp_helpers import AUTH_FILE, wait_ready
from lsprotocol import types
from pytest_lsp import LanguageClient


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=version, text=path.read_text() if text is None else text)))
    return uri


def hover_text(result: types.Hover | None) -> str:
    assert result is not None
    contents = result.contents
    assert isinstance(contents, types.MarkupContent)
    return contents.value


async def test_hover_shows_risk_and_always_strong_rule_first(client: LanguageClient, session_root: Path) -> None:
    await wait_ready(client)
    uri = open_doc(client, session_root / "services" / "identity" / "tokens.py")
    await wait_ready(client)
    line = AUTH_FILE.splitlines().index('    claims = jwt.decode(request.token, KEY, algorithms=["HS256"])')
    text = hover_text(await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, 4))))
    assert "Risk score: " in text and "-> strong lane" in text
    assert text.index("Always strong on this line") < text.index("`files_touched`")
    assert "auth_code" in text and "tokens.py:" in text
    # no toolchain in this repository and no policy: the hover says no verification was found
    assert "Verification: none found; a patch is then checked only by the tamper checks" in text
    other = hover_text(await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 0))))
    assert "Always strong on this line" not in other


async def test_hover_outside_change_set_is_empty(client: LanguageClient, session_root: Path) -> None:
    await wait_ready(client)
    uri = open_doc(client, session_root / "README.md")
    result = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 0)))
    assert result is None
