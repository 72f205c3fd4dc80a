"""Bad input on the wire, byte for byte: every request id is answered; shutdown is quick and clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import client_capabilities

PROFILES = ["visual-studio-code", "neovim"]


class RawClient:
    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.profile = ""
        self.proc = subprocess.Popen([sys.executable, "-m", "route_agent", "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd, env=env)

    def send_bytes(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(json.dumps(message).encode())

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            assert line, "server closed stdout"
            if line == b"\r\n":
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))  # type: ignore[no-any-return]

    def response(self, msg_id: Any) -> dict[str, Any]:
        while True:
            message = self.read()
            if "method" in message and "id" in message:  # a request from the server: answer it
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                continue
            if message.get("id") == msg_id and "method" not in message:
                return message


@pytest.fixture(params=PROFILES)
def raw(request: pytest.FixtureRequest, session_root: Path):  # type: ignore[no-untyped-def]
    client = RawClient(session_root, dict(os.environ))
    client.profile = request.param
    from lsprotocol.converters import get_converter

    caps = get_converter().unstructure(client_capabilities(request.param))
    client.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"processId": os.getpid(), "rootUri": session_root.as_uri(), "capabilities": caps,
                            "workspaceFolders": [{"uri": session_root.as_uri(), "name": "repo"}]}})
    assert "result" in client.response(1)
    client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    yield client
    if client.proc.poll() is None:
        client.proc.kill()
    client.proc.wait(timeout=5)


def test_invalid_params_are_answered(raw: RawClient) -> None:
    raw.send({"jsonrpc": "2.0", "id": 10, "method": "textDocument/hover", "params": {"textDocument": 5}})
    reply = raw.response(10)
    assert reply["error"]["code"] == -32602
    raw.send({"jsonrpc": "2.0", "id": 11, "method": "textDocument/codeAction", "params": None})
    assert raw.response(11)["error"]["code"] in (-32602, -32603)


def test_malformed_json_unknown_method_and_non_objects(raw: RawClient) -> None:
    raw.send_bytes(b"{not json")
    assert raw.response(None)["error"]["code"] == -32700
    raw.send_bytes(b"[1, 2]")
    assert raw.response(None)["error"]["code"] == -32600
    raw.send({"jsonrpc": "2.0", "id": "x", "method": "no/suchMethod", "params": {}})
    assert raw.response("x")["error"]["code"] == -32601
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"bogus": True}})
    raw.send({"jsonrpc": "2.0", "id": 12, "method": "workspace/executeCommand",
              "params": {"command": "route-agent.status", "arguments": [{}]}})
    assert "folders" in raw.response(12)["result"]


def test_shutdown_is_quick_and_leaves_no_children(raw: RawClient) -> None:
    raw.send({"jsonrpc": "2.0", "id": 20, "method": "workspace/executeCommand",
              "params": {"command": "route-agent.refresh", "arguments": [{}]}})
    raw.response(20)
    raw.send({"jsonrpc": "2.0", "id": 21, "method": "shutdown"})
    assert raw.response(21)["result"] is None
    raw.send({"jsonrpc": "2.0", "id": 22, "method": "textDocument/hover",
              "params": {"textDocument": {"uri": "file:///x"}, "position": {"line": 0, "character": 0}}})
    assert raw.response(22)["error"]["code"] == -32600
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    code = raw.proc.wait(timeout=30)  # a hang guard; the time is benchmarks/bench_shutdown.py's
    assert code == 0
    children = subprocess.run(["pgrep", "-P", str(raw.proc.pid)], capture_output=True, text=True, check=False).stdout.split()
    assert children == []


def test_stdin_closing_ends_the_server(raw: RawClient) -> None:
    assert raw.proc.stdin is not None
    raw.proc.stdin.close()
    assert raw.proc.wait(timeout=5) == 1



@pytest.fixture
def busy_cores():  # type: ignore[no-untyped-def]
    """Two spinning processes (this machine has two cores): the shutdown race showed under load."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for spinner in spinners:
        spinner.kill()
        spinner.wait(timeout=5)


@pytest.mark.parametrize("attempt", range(8))
def test_replies_that_arrive_after_shutdown_are_dropped(raw: RawClient, busy_cores: None, attempt: int) -> None:
    """Every request the server made is answered only after `shutdown` was sent, under load.

    The server cancels the tasks awaiting its own requests while it shuts down; a reply that
    arrives in that window must be dropped, not crash the server (it used to exit 1). The
    replies go out after a delay that differs per attempt, so the attempts sweep the window.
    """
    caps = client_capabilities(raw.profile).workspace
    assert caps is not None
    expected = {"workspace/configuration"} if caps.configuration else set()
    if caps.did_change_watched_files is not None and caps.did_change_watched_files.dynamic_registration:
        expected.add("client/registerCapability")
    assert expected, "the profile makes the server send no request: nothing to answer late"
    pending: dict[Any, str] = {}
    while not expected <= set(pending.values()):
        message = raw.read()
        if "method" in message and "id" in message:
            pending[message["id"]] = message["method"]
    raw.send({"jsonrpc": "2.0", "id": 30, "method": "workspace/executeCommand",
              "params": {"command": "route-agent.refresh", "arguments": [{}]}})
    raw.send({"jsonrpc": "2.0", "id": 31, "method": "shutdown"})
    time.sleep(0.005 * attempt)  # not synchronisation: each attempt answers at another point of the shutdown
    for msg_id, method in pending.items():
        result = [None] if method == "workspace/configuration" else None
        raw.send({"jsonrpc": "2.0", "id": msg_id, "result": result})
    assert raw.response(31)["result"] is None
    raw.send({"jsonrpc": "2.0", "id": 32, "method": "textDocument/hover",
              "params": {"textDocument": {"uri": "file:///x"}, "position": {"line": 0, "character": 0}}})
    assert raw.response(32)["error"]["code"] == -32600  # still reading and answering after the late replies
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    assert raw.proc.wait(timeout=30) == 0
