"""LSP latency and memory, as ratios measured side by side in one run (benchmarks print; tests never time).

1. Hover with a cached risk: route-agent vs the raw JSON-RPC floor (a blocking-read stdio server with
   stdlib json), vs a stock pygls 2.1 hover server, vs `ruff server`'s hover. Requests interleaved
   round by round; medians and p99.
2. Marginal cost of one incremental didChange on a 10,000-line file: route-agent vs stock pygls
   (each: K changes then one request, minus the request alone, divided by K).
3. Idle RSS of route-agent with a ~34k-file repository open (benchmarks/.cache/stdlib-repo; built
   from a copy of the Python standard library when absent).

Usage: .venv/bin/python benchmarks/bench_lsp.py [--rounds 400] [--changes 2000] [--skip-rss]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"

FLOOR_SERVER = r'''
import json, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    length = 0
    while True:
        line = inp.readline()
        if not line:
            sys.exit(0)
        if line == b"\r\n":
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    msg = json.loads(inp.read(length))
    if "id" not in msg:
        if msg.get("method") == "exit":
            sys.exit(0)
        continue
    if msg["method"] == "initialize":
        result = {"capabilities": {"hoverProvider": True, "textDocumentSync": 2}}
    elif msg["method"] == "textDocument/hover":
        result = {"contents": {"kind": "markdown", "value": "Risk score: 3 -> fast lane"}}
    else:
        result = None
    body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode()
    out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    out.flush()
'''

STOCK_PYGLS_SERVER = r'''
from lsprotocol import types
from pygls.lsp.server import LanguageServer
server = LanguageServer("stock", "1")
@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls, params):
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="Risk score: 3 -> fast lane"))
server.start_io()
'''


class Client:
    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd,
                                     env=env or dict(os.environ))
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server closed its output")
            if line == b"\r\n":
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))  # type: ignore[no-any-return]

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        msg_id = self.next_id
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        while True:
            message = self.read()
            if "method" in message:
                if "id" in message:
                    self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                continue
            if message.get("id") == msg_id:
                return message.get("result", message.get("error"))

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self, root: Path, options: dict[str, Any] | None = None) -> None:
        caps = {"textDocument": {"hover": {"contentFormat": ["markdown", "plaintext"]}, "synchronization": {}},
                "workspace": {"configuration": False}, "window": {"workDoneProgress": False}}
        self.request("initialize", {"processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": caps,
                                    "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                                    "initializationOptions": options or {}})
        self.notify("initialized", {})

    def open(self, path: Path, text: str, language: str = "python") -> str:
        uri = path.as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}})
        return uri

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=b@example.com", "-c", "user.name=b", *args], cwd=root, check=True, capture_output=True)


def demo_repo(base: Path) -> tuple[Path, Path]:
    root = base / "demo"
    (root / "app").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    target = root / "app" / "auth_tokens.py"
    target.write_text("def check(token):\n    return True\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    target.write_text("import jwt\n\n\ndef check(token):\n    return jwt.decode(token, KEY)\n")
    return root, target


def wait_ready(client: Client, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.request("workspace/executeCommand", {"command": "route-agent.status", "arguments": [{}]})
        folder = info["folders"][0]
        if folder["generation"] > 0 and not folder["refreshing"]:
            return info  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise RuntimeError("route-agent never finished its first refresh")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_hover(rounds: int, base: Path) -> dict[str, dict[str, float]]:
    root, target = demo_repo(base)
    ruff_file = root / "ruff_demo.py"
    ruff_file.write_text("import os  # noqa: F401\n")
    floor = Client([sys.executable, "-c", FLOOR_SERVER], root)
    stock = Client([sys.executable, "-c", STOCK_PYGLS_SERVER], root)
    ours = Client([sys.executable, "-m", "route_agent", "serve"], root)
    ruff_bin = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    ruff = Client([ruff_bin, "server"], root) if ruff_bin else None
    servers: dict[str, tuple[Client, dict[str, Any]]] = {}
    for name, client in (("floor", floor), ("stock-pygls", stock), ("route-agent", ours), ("ruff", ruff)):
        if client is None:
            continue
        client.initialize(root, {"debounceMs": 50} if name == "route-agent" else None)
        if name == "ruff":
            uri = client.open(ruff_file, ruff_file.read_text())
            params = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 19}}
        else:
            uri = client.open(target, target.read_text())
            params = {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 12}}
        servers[name] = (client, params)
    wait_ready(ours)
    sample = ours.request("textDocument/hover", servers["route-agent"][1])
    assert sample and "Risk score" in sample["contents"]["value"], sample
    if ruff is not None:
        ruff_sample = ruff.request("textDocument/hover", servers["ruff"][1])
        assert ruff_sample, "ruff returned no hover; the position is wrong"
    times: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(50):  # warm up
        for client, params in servers.values():
            client.request("textDocument/hover", params)
    for _ in range(rounds):
        for name, (client, params) in servers.items():
            started = time.perf_counter()
            client.request("textDocument/hover", params)
            times[name].append(time.perf_counter() - started)
    for client, _ in servers.values():
        client.close()
    return {name: {"median_us": statistics.median(v) * 1e6, "p99_us": pct(v, 0.99) * 1e6} for name, v in times.items()}


def bench_did_change(changes: int, base: Path) -> dict[str, float]:
    root = base / "big"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "seed.txt").write_text("x\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    text = "".join(f"value_{i} = {i}  # some filler text to make the line realistic\n" for i in range(10_000))
    path = root / "big.py"
    results: dict[str, float] = {}
    clients = {
        "stock-pygls": Client([sys.executable, "-c", STOCK_PYGLS_SERVER], root),
        "route-agent": Client([sys.executable, "-m", "route_agent", "serve"], root),
    }
    for name, client in clients.items():
        client.initialize(root, {"debounceMs": 600000} if name == "route-agent" else None)
        uri = client.open(path, text)
        params = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}}
        for _ in range(20):
            client.request("textDocument/hover", params)
        alone = []
        for _ in range(50):
            started = time.perf_counter()
            client.request("textDocument/hover", params)
            alone.append(time.perf_counter() - started)
        batches = []
        version = 1
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(changes // 5):
                version += 1
                client.notify("textDocument/didChange", {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": {"line": 5000, "character": 0},
                                                  "end": {"line": 5000, "character": 1}}, "text": "v"}]})
            client.request("textDocument/hover", params)
            batches.append((time.perf_counter() - started - statistics.median(alone)) / (changes // 5))
        results[name] = statistics.median(batches) * 1e6
        client.close()
    return results


def stdlib_repo() -> Path:
    for candidate in sorted(CACHE.glob("*")) if CACHE.is_dir() else []:
        if (candidate / ".git").is_dir():
            listed = subprocess.run(["git", "ls-files"], cwd=candidate, capture_output=True, check=False).stdout
            if listed.count(b"\n") >= 34_000:
                return candidate  # another benchmark's copy, large enough
    root = CACHE / "stdlib-repo-lsp-34k"
    if (root / ".git").is_dir():
        return root
    source = Path(sysconfig.get_paths()["stdlib"])
    # The standard library is about 2,450 files; copies side by side make a 34k-file repository.
    copy = 0
    while sum(1 for p in root.rglob("*") if p.is_file()) < 34_000 if root.exists() else True:  # files, not folders
        shutil.copytree(source, root / f"stdlib_{copy}", ignore=shutil.ignore_patterns("__pycache__", "site-packages", "*.pyc"),
                        symlinks=True)
        copy += 1
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "stdlib")
    return root


def bench_rss() -> dict[str, float]:
    root = stdlib_repo()
    files = int(subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, check=True).stdout.count(b"\n"))
    edited = sorted(root.glob("*/*.py"))[:20]
    originals = {p: p.read_bytes() for p in edited}
    try:
        for p in edited:
            p.write_bytes(originals[p] + b"\n# edited\n")
        client = Client([sys.executable, "-m", "route_agent", "serve"], root)
        client.initialize(root, {"debounceMs": 50})
        wait_ready(client, timeout=300)
        time.sleep(1.0)
        rss = client.rss_mb()
        client.close()
    finally:
        for p, data in originals.items():
            p.write_bytes(data)
    return {"files": files, "rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ.setdefault("ROUTE_AGENT_STATE_DIR", str(base / "state"))
        os.environ.setdefault("ROUTE_AGENT_CONFIG_DIR", str(base / "config"))
        hover = bench_hover(args.rounds, base)
        floor = hover["floor"]["median_us"]
        print(f"hover ({args.rounds} interleaved rounds; F = raw JSON-RPC floor median {floor:.0f} µs)")
        for name, figures in hover.items():
            print(f"  {name:12s} median {figures['median_us']:8.0f} µs = {figures['median_us'] / floor:5.2f} F"
                  f"   p99 {figures['p99_us']:8.0f} µs = {figures['p99_us'] / floor:5.2f} F")
        if "ruff" in hover:
            print(f"  route-agent / ruff median: {hover['route-agent']['median_us'] / hover['ruff']['median_us']:.2f}")
        change = bench_did_change(args.changes, base)
        print(f"didChange on a 10,000-line file, marginal cost per change ({args.changes} changes)")
        for name, micro in change.items():
            print(f"  {name:12s} {micro:8.1f} µs")
        print(f"  route-agent / stock pygls: {change['route-agent'] / change['stock-pygls']:.3f}")
    if not args.skip_rss:
        rss = bench_rss()
        print(f"idle RSS with a {rss['files']:.0f}-file repository open (20 files edited): {rss['rss_mb']:.1f} MB")


if __name__ == "__main__":
    main()
