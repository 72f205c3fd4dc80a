"""The status-bar contract: risk summary command and notification, ledger report, restricted mode."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from lsp_helpers import wait_ready
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient, client_capabilities
from test_protocol_raw import RawClient

from support.wait import wait_until


async def test_risk_summary_names_the_lane_and_the_breakdown(client: LanguageClient, session_root: Path) -> None:
    await wait_ready(client)
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="route-agent.riskSummary", arguments=[{"uri": (session_root / "services" / "identity" / "tokens.py").as_uri()}]))
    assert result["folderUri"].rstrip("/") == session_root.as_uri().rstrip("/")
    assert result["lane"] == "strong"
    assert any(line.startswith("auth_code") for line in result["alwaysStrong"])
    signals = {c["signal"] for c in result["contributions"]}
    assert {"files_touched", "auth_code"} <= signals
    assert "services/identity/tokens.py" in result["files"]


async def test_risk_summary_for_a_path_outside_every_folder_is_invalid_params(client: LanguageClient) -> None:
    await wait_ready(client)
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="route-agent.riskSummary", arguments=[{"uri": "file:///nowhere/else.py"}]))


async def test_ledger_report_command(client: LanguageClient) -> None:
    result = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="route-agent.ledgerReport", arguments=[{}]))
    assert set(result) >= {"ledger", "attempts", "tasks", "lanes"}
    assert isinstance(result["lanes"], list)


def _initialize(raw: RawClient, root: Path, options: dict[str, object]) -> None:
    from lsprotocol.converters import get_converter

    caps = get_converter().unstructure(client_capabilities("visual-studio-code"))
    raw.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": root.as_uri(), "capabilities": caps,
        "workspaceFolders": [{"uri": root.as_uri(), "name": "repo"}], "initializationOptions": options}})
    raw.response(1)
    raw.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})


def _shutdown(raw: RawClient) -> None:
    raw.send({"jsonrpc": "2.0", "id": 99, "method": "shutdown"})
    raw.response(99)
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    raw.proc.wait(timeout=10)


def test_risk_changed_is_sent_to_clients_that_ask(session_root: Path) -> None:
    raw = RawClient(session_root, dict(os.environ))
    try:
        _initialize(raw, session_root, {"debounceMs": 10, "riskNotifications": True})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = raw.read()
            if "id" in message and "method" in message:
                raw.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            if message.get("method") == "routeAgent/riskChanged":
                payload = message["params"]
                assert payload["lane"] == "strong" and isinstance(payload["riskScore"], int)
                assert payload["contributions"], json.dumps(payload)
                break
        else:
            raise AssertionError("no routeAgent/riskChanged notification")
    finally:
        _shutdown(raw)


def test_restricted_mode_runs_nothing_from_the_repository(session_root: Path) -> None:
    raw = RawClient(session_root, dict(os.environ, FAKE_KEY="k"))
    try:
        _initialize(raw, session_root, {"debounceMs": 10, "workspaceTrusted": False})
        raw.send({"jsonrpc": "2.0", "id": 5, "method": "workspace/executeCommand", "params": {
            "command": "route-agent.routeFix", "arguments": [{"brief": "fix it", "folder": session_root.as_uri()}]}})
        answer = raw.response(5)
        # An expected refusal: answered with a short message (and shown as an Error message), not an RPC error.
        assert answer["result"]["refused"] is True and "not trusted" in answer["result"]["message"]
    finally:
        _shutdown(raw)


def test_a_commit_outside_the_editor_refreshes_clients_without_file_watching(tmp_path: Path) -> None:
    """Neovim's client cannot register file watchers: the server notices the commit itself."""
    import subprocess

    from lsprotocol.converters import get_converter

    from support.repos import make_sync_repo

    root = make_sync_repo(tmp_path / "repo")
    raw = RawClient(root, dict(os.environ, ROUTE_AGENT_STATE_DIR=str(tmp_path / "state")))
    try:
        caps = get_converter().unstructure(client_capabilities("neovim"))
        raw.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": None, "rootUri": root.as_uri(), "capabilities": caps,
            "workspaceFolders": [{"uri": root.as_uri(), "name": "repo"}], "initializationOptions": {"debounceMs": 10}}})
        raw.response(1)
        raw.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})

        def paths(msg_id: int) -> list[str]:
            raw.send({"jsonrpc": "2.0", "id": msg_id, "method": "workspace/executeCommand",
                      "params": {"command": "route-agent.status", "arguments": [{}]}})
            return list(raw.response(msg_id)["result"]["folders"][0]["paths"])

        ids = iter(range(10, 10_000))
        assert "README.md" in wait_until(lambda: paths(next(ids)), 30, interval=0.1, what="the pending change")
        subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "land it"], cwd=root, check=True)
        # (the pending README edit is now committed: nothing is left in the change set)
        wait_until(lambda: not paths(next(ids)), 30, interval=0.2, what="the commit made outside the editor")
    finally:
        _shutdown(raw)
