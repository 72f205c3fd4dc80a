"""How long `route-agent serve` takes to shut down: from `shutdown` to the process's exit, idle and
with a refresh just scheduled, and in proportion to the server's start-up (a ratio, so the figure
means the same on a slow machine). The tests only guard against a hang; this prints the figures.

Usage: .venv/bin/python benchmarks/bench_shutdown.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class Server:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "route_agent", "serve"], cwd=root, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def response(self, msg_id: int) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            length = 0
            while (line := self.proc.stdout.readline().strip()):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            message = json.loads(self.proc.stdout.read(length))
            if message.get("id") == msg_id and "method" not in message:
                return message  # type: ignore[no-any-return]
            if "method" in message and "id" in message:  # a request from the server: answer it
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})


def make_repo(root: Path) -> Path:
    root.mkdir()
    def run(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=b@example.com", "-c", "user.name=b", *args], cwd=root, check=True, capture_output=True)

    run("init", "-q", "-b", "main")
    (root / "util.py").write_text("def add(a, b):\n    return a + b\n")
    run("add", "-A")
    run("commit", "-q", "-m", "init")
    (root / "util.py").write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    return root


def one_round(root: Path, env: dict[str, str], refresh: bool) -> tuple[float, float]:
    started = time.monotonic()
    server = Server(root, env)
    server.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": {},
        "workspaceFolders": [{"uri": root.as_uri(), "name": "repo"}]}})
    server.response(1)
    server.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    server.send({"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand",
                 "params": {"command": "route-agent.status", "arguments": [{}]}})
    server.response(2)
    startup = time.monotonic() - started
    if refresh:
        server.send({"jsonrpc": "2.0", "id": 3, "method": "workspace/executeCommand",
                     "params": {"command": "route-agent.refresh", "arguments": [{}]}})
        server.response(3)
    begun = time.monotonic()
    server.send({"jsonrpc": "2.0", "id": 4, "method": "shutdown"})
    server.response(4)
    server.send({"jsonrpc": "2.0", "method": "exit"})
    server.proc.wait(timeout=60)
    return time.monotonic() - begun, startup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {**os.environ, "ROUTE_AGENT_STATE_DIR": str(base / "state"), "ROUTE_AGENT_CONFIG_DIR": str(base / "config")}
        root = make_repo(base / "repo")
        for label, refresh in (("idle", False), ("refresh scheduled", True)):
            rounds = [one_round(root, env, refresh) for _ in range(args.rounds)]
            shutdowns = [r[0] for r in rounds]
            startups = [r[1] for r in rounds]
            print(f"shutdown, {label}: median {statistics.median(shutdowns) * 1000:.0f} ms, max {max(shutdowns) * 1000:.0f} ms; "
                  f"median shutdown / median start-up = {statistics.median(shutdowns) / statistics.median(startups):.2f}")


if __name__ == "__main__":
    main()
