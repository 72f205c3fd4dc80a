"""Shared pieces of the safety suite: a user's repository and environment with bait secrets, a policy
the user passes with --policy, the CLI as a subprocess, and the "nothing was lost" assertions.

Every secret-looking value the suite plants contains BAIT, so one substring search finds a leak in a
request body, a header, a log, the state directory or a check's environment.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from route_agent.workspace.pool import DEFAULT_POOL_SIZE as POOL_SIZE
from support.repos import FIX_REPLY, fingerprint, held_worktrees, make_sync_repo, pool_worktrees

BAIT = "SECRETBAIT"
KEY = f"sk-safety-{BAIT}-0123456789abcdef"
BAIT_ENV = {
    "FAKE_LLM_KEY": KEY,
    "OPENAI_API_KEY": f"sk-openai-{BAIT}-aaaaaaaaaaaaaaaa",
    "AWS_SECRET_ACCESS_KEY": f"aws-{BAIT}-bbbbbbbbbbbbbbbbbbbb",
    "GITHUB_TOKEN": f"ghp_{BAIT}cccccccccccccccccccccccc",
    "SSH_AUTH_SOCK": f"/tmp/agent-{BAIT}.sock",
    "DEPLOY_SECRET": f"deploy-{BAIT}",
}
VERIFIER_90 = '{"verdict": "pass", "confidence": 0.9, "summary": "releases the connection", "concerns": []}'
PY = sys.executable

# A check that fails when it can see any key, token or secret, or when stdin is not closed (EOF at once).
ENV_CHECK_CODE = (
    "import os, sys\n"
    "data = sys.stdin.read()\n"
    "bad = sorted(k for k, v in os.environ.items() if k.endswith(('_KEY', '_TOKEN', '_SECRET')) or k.startswith(('AWS_', 'GITHUB_'))"
    " or k == 'SSH_AUTH_SOCK' or ('SECRET' + 'BAIT') in v)\n"
    "print('env names seen:', sorted(os.environ))\n"
    "sys.exit(3 if bad or data else 0)\n"
)
TEST_CHECK_CODE = "from app.sync import Pool, sync\np = Pool()\nsync(p, 3)\nassert p.in_use == 0, 'a connection leaked'\n"


def check(name: str, run: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "run": run, **extra}


def default_checks() -> list[dict[str, Any]]:
    return [check("envcheck", [PY, "-c", ENV_CHECK_CODE], timeout_s=60),
            check("tests", [PY, "-c", TEST_CHECK_CODE], kind="tests", timeout_s=60)]


def policy_data(base_url: str, fast: str = "fast-fixer", strong: str = "strong-fixer", verifier: str | None = "verifier-90",
                checks: list[dict[str, Any]] | None = None, strong_checks: list[dict[str, Any]] | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    def model(name: str, tier_price: float) -> dict[str, Any]:
        return {"provider": "openai-compatible", "base_url": base_url, "api_key_env": "FAKE_LLM_KEY", "model": name,
                "price_per_mtok": {"input": tier_price, "output": tier_price * 5}, "idle_timeout_s": 2, "timeout_s": 30,
                "executor": "oneshot"}

    models: dict[str, Any] = {"fast": model(fast, 1.0), "strong": model(strong, 3.0)}
    if verifier is not None:
        models["verifier"] = model(verifier, 0.5)
    fast_checks = default_checks() if checks is None else checks
    data: dict[str, Any] = {
        "models": models,
        "verification": {"fast": fast_checks, "strong": fast_checks if strong_checks is None else strong_checks, "run_timeout_s": 120},
    }
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


def write_policy(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))  # JSON is YAML
    return path


@dataclass
class Result:
    proc: subprocess.CompletedProcess[str]
    out: dict[str, Any] | None

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def text(self) -> str:
        return self.proc.stdout + self.proc.stderr


@dataclass
class Scenario:
    """One user: their repository, environment, state directory, ledger and the fake model server."""

    tmp: Path
    fake: Any
    repo: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    before: dict[str, str] = field(init=False)
    expected_rows: int = 0
    outputs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.repo = make_sync_repo(self.tmp / "repo")
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN", "_SECRET")) and not k.startswith("ROUTE_AGENT_")}
        env.update(BAIT_ENV)
        env.update(ROUTE_AGENT_STATE_DIR=str(self.state), ROUTE_AGENT_CONFIG_DIR=str(self.tmp / "config"),
                   ROUTE_AGENT_LEDGER=str(self.ledger))
        self.env = env
        self.fake.script("fast-fixer", reply=FIX_REPLY)
        self.fake.script("strong-fixer", reply=FIX_REPLY)
        self.fake.script("verifier-90", reply=VERIFIER_90)
        self.before = fingerprint(self.repo)

    @property
    def state(self) -> Path:
        return self.tmp / "state"

    @property
    def ledger(self) -> Path:
        return self.tmp / "ledger.sqlite3"

    def policy(self, **kwargs: Any) -> Path:
        return write_policy(self.tmp / "policy.yaml", policy_data(self.fake.base_url, **kwargs))

    def snapshot(self) -> None:
        self.before = fingerprint(self.repo)

    def cli(self, *args: str, timeout: float = 120, stdin: str | None = None, cwd: Path | None = None) -> Result:
        proc = subprocess.run([PY, "-m", "route_agent", *args], capture_output=True, text=True, env=self.env, cwd=cwd or self.repo,
                              timeout=timeout, check=False, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
        self.outputs.append(proc.stdout + proc.stderr)
        out = None
        if "--json" in args:
            try:
                out = json.loads(proc.stdout)
            except ValueError:
                out = None
        if out is not None and isinstance(out.get("attempts"), list) and out.get("result") != "dry-run":
            self.expected_rows += len(out["attempts"])
        return Result(proc, out)

    def route(self, task: str, *extra: str, policy: Path | None = None, timeout: float = 120) -> Result:
        args = ["route", "--task", task, "--json", *extra]
        if policy is not None:
            args += ["--policy", str(policy)]
        return self.cli(*args, timeout=timeout)

    def accept_unsandboxed(self) -> None:
        """The user accepts once that this repository's code runs without the sandbox (issue 12, item 3)."""
        accepted = self.cli("policy", "approve", "--unsandboxed", "--yes", "--workspace", str(self.repo))
        assert accepted.code == 0, accepted.text

    def ledger_rows(self) -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        db = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True)
        try:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY rowid")]
        finally:
            db.close()

    def assert_nothing_lost(self, *, applied: bool = False) -> None:
        """The user's files, index and git state are as they were (unless they applied a patch), no
        worktree is still held (the pool keeps at most its size, idle), the ledger holds exactly one
        row per attempt reported, no secret leaked."""
        if not applied:
            assert fingerprint(self.repo) == self.before, "the user's tree, index or .git changed"
        held = held_worktrees(self.state)
        assert not held, f"worktrees still held after the run: {held}"
        pooled = pool_worktrees(self.state)
        assert len(pooled) <= POOL_SIZE, f"more worktrees kept than the pool's size ({POOL_SIZE}): {pooled}"
        rows = self.ledger_rows()
        assert len(rows) == self.expected_rows, f"ledger has {len(rows)} rows, the runs reported {self.expected_rows} attempts"
        ids = [(r["run_id"], r["attempt_no"]) for r in rows]
        assert len(ids) == len(set(ids)), "a ledger row was duplicated"
        assert_no_leak(self)


def assert_no_leak(s: Scenario) -> None:
    for request in s.fake.requests:
        assert BAIT not in request.body, f"a secret went to the model in a request body ({request.model})"
        for name, value in request.headers.items():
            if name == "authorization":
                assert value == f"Bearer {KEY}", "an unexpected credential was sent"
            else:
                assert BAIT not in value, f"a secret went out in header {name}"
    for text in s.outputs:
        assert BAIT not in text, "a secret was printed by the CLI: " + text[max(0, text.find(BAIT) - 300):text.find(BAIT) + 50]
    if s.state.exists():
        for path in s.state.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert BAIT.encode() not in path.read_bytes(), f"a secret was stored in {path}"
    if s.ledger.exists():
        assert BAIT.encode() not in s.ledger.read_bytes(), "a secret was stored in the ledger"


def processes_with(marker: str) -> list[int]:
    """PIDs whose command line contains `marker` (the test's own process excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class LspProcess:
    """`route-agent serve` as a subprocess with a reader thread that frames its replies."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([PY, "-m", "route_agent", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd, env=env)
        self.messages: list[dict[str, Any]] = []
        self.replies: dict[Any, dict[str, Any]] = {}
        self.cond = threading.Condition()
        self.stderr: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err = threading.Thread(target=self._drain_err, daemon=True)
        self._err.start()

    def _drain_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self.stderr) < 2000:
                self.stderr.append(line)

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self.cond:
                        self.cond.notify_all()
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length is None:
                continue
            message = json.loads(out.read(length))
            with self.cond:
                if isinstance(message, dict) and "method" in message and "id" in message:
                    self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})  # answer server requests
                elif isinstance(message, dict) and "id" in message and "method" not in message:
                    self.replies[_key(message["id"])] = message
                if len(self.messages) < 5000:
                    self.messages.append(message)
                self.cond.notify_all()

    _lock = threading.Lock()

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        body = json.dumps(message).encode()
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, msg_id: Any, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def wait_reply(self, msg_id: Any, timeout: float = 10.0) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        with self.cond:
            while _key(msg_id) not in self.replies:
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return self.replies.get(_key(msg_id))
                self.cond.wait(min(left, 0.2))
            return self.replies[_key(msg_id)]

    def wait_all(self, ids: list[Any], timeout: float) -> list[Any]:
        """The ids still unanswered after `timeout`."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                missing = [i for i in ids if _key(i) not in self.replies]
                if not missing or time.monotonic() >= end or self.proc.poll() is not None:
                    return missing
                self.cond.wait(0.2)

    def initialize(self, root: Path, options: dict[str, Any] | None = None) -> dict[str, Any]:
        self.request(1, "initialize", {"processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": {
            "textDocument": {"hover": {"contentFormat": ["markdown"]}, "publishDiagnostics": {}},
            "window": {"workDoneProgress": True}, "workspace": {"configuration": True}},
            "workspaceFolders": [{"uri": root.as_uri(), "name": "repo"}], "initializationOptions": options or {}})
        reply = self.wait_reply(1, 30)
        assert reply is not None and "result" in reply, reply
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def _key(msg_id: Any) -> str:
    return json.dumps(msg_id, sort_keys=True)
