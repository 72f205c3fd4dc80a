"""The shipped presets for external agents (policies/examples/agents.yaml), driven end to end: the real
aider and mini-swe-agent programs, installed by scripts/setup-agents.sh in .agents-venv, run as a lane's
executor in the sandboxed worktree against the scripted model server on 127.0.0.1, each answered in
its own reply format. The routed model name and the relay's address reach the agent; the lane's key
reaches the model server through route-agent's relay, never the agent; every call the agent makes is
metered into the attempt; and its edit becomes the verified patch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.paths import REPO_ROOT
from support.repos import fingerprint, make_sync_repo

PRESETS = REPO_ROOT / "policies" / "examples" / "agents.yaml"
AGENTS_BIN = Path(os.environ.get("ROUTE_AGENT_AGENTS_BIN", REPO_ROOT / ".agents-venv" / "bin"))
LANE_KEY = "fake-lane-key-0123456789abcdef"
VERIFIER_90 = '{"verdict": "pass", "confidence": 0.9, "summary": "releases the connection", "concerns": []}'

AIDER_REPLY = """The connection is never released. Release it after each attempt.

app/sync.py
```python
<<<<<<< SEARCH
        pool.acquire()
        done += 1
=======
        pool.acquire()
        done += 1
        pool.release()
>>>>>>> REPLACE
```
"""

MINI_REPLIES = [
    "THOUGHT: Let me run the failing test first.\n\n```mswea_bash_command\n"
    f"{sys.executable} -m pytest -q -p no:cacheprovider tests/test_sync.py\n```\n",
    "THOUGHT: The pool connection is never released; release it after each attempt.\n\n```mswea_bash_command\n"
    "sed -i 's/^        done += 1$/        done += 1\\n        pool.release()/' app/sync.py\n```\n",
    "THOUGHT: The fix is in place.\n\n```mswea_bash_command\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```\n",
]


@pytest.fixture(scope="module", autouse=True)
def agents_installed() -> None:
    missing = [name for name in ("aider", "mini-swe-agent") if not (AGENTS_BIN / name).is_file()]
    assert not missing, f"{', '.join(missing)} not found in {AGENTS_BIN}: run scripts/setup-agents.sh (it installs them in .agents-venv)"


def write_policy(path: Path, base_url: str, executor: str, model: str) -> Path:
    agents = yaml.safe_load(PRESETS.read_text())["agents"]
    spec: dict[str, Any] = {"provider": "openai-compatible", "base_url": base_url, "api_key_env": "FAKE_LLM_KEY", "timeout_s": 60}
    check = {"name": "tests", "kind": "tests", "parser": "junit", "report": ".route-agent/junit.xml", "timeout_s": 120,
             "run": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=.route-agent/junit.xml"]}
    policy = {
        "agents": agents,
        "models": {"fast": {**spec, "model": model, "executor": executor}, "strong": {**spec, "model": "strong-unused"},
                   "verifier": {**spec, "model": "verifier-90", "executor": "oneshot"}},
        "verification": {"fast": [check], "strong": [check]},
        "routing": {"max_attempts": 1},
    }
    path.write_text(json.dumps(policy))  # JSON is YAML
    return path


def run_route(repo: Path, policy: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    env.update(FAKE_LLM_KEY=LANE_KEY, PATH=f"{AGENTS_BIN}:{env.get('PATH', '/usr/bin:/bin')}", ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"),
               ROUTE_AGENT_CONFIG_DIR=str(tmp_path / "config"), ROUTE_AGENT_LEDGER=str(tmp_path / "ledger.sqlite3"))
    return subprocess.run([sys.executable, "-m", "route_agent", "--task", "fix retry leak in sync worker: release the pool connection",
                           "--policy", str(policy), "--lane", "fast", "--json"], capture_output=True, text=True, env=env, cwd=repo,
                          timeout=600, check=False)


def assert_reached_the_agent(fake_llm, model: str) -> list[Any]:  # type: ignore[no-untyped-def]
    requests = [r for r in fake_llm.requests if r.model == model]
    assert requests, f"the agent never called {model}; received: {[r.model for r in fake_llm.requests]}"
    for request in requests:
        assert request.path == "/v1/chat/completions", "the base URL reached the agent"
        assert request.headers.get("authorization") == f"Bearer {LANE_KEY}", "the relay put the lane's key on the agent's call"
    assert "release the pool connection" in json.dumps(requests[0].json["messages"]), "the brief reached the agent"
    return requests


def assert_verified_patch(proc: subprocess.CompletedProcess[str], repo: Path, tmp_path: Path, executor: str, calls: int) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    (attempt,) = out["attempts"]
    assert (attempt["executor"], attempt["passed"], out["result"]) == (executor, True, "pass")
    assert attempt["steps"] == calls, "each model call the agent made through the relay is a step"
    assert attempt["input_tokens"] > 0 and attempt["output_tokens"] > 0, "the agent's calls are metered"
    assert proc.stderr.count(f"{executor} model call ") == calls, "the CLI prints a line per model call"
    assert [c["status"] for c in attempt["checks"]] == ["pass"], "the agent's edit was verified by the policy's checks"
    log = tmp_path / "state" / "runs" / out["run_id"] / "agent" / f"attempt-1-{executor}.log"
    assert LANE_KEY not in log.read_text()
    env = {**os.environ, "ROUTE_AGENT_STATE_DIR": str(tmp_path / "state")}
    applied = subprocess.run([sys.executable, "-m", "route_agent", "apply", out["run_id"]], capture_output=True, text=True, env=env,
                             cwd=repo, timeout=120, check=False)
    assert applied.returncode == 0, applied.stderr
    assert "pool.release()" in (repo / "app" / "sync.py").read_text()


def test_aider_preset_end_to_end(tmp_path: Path, fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-aider", reply=AIDER_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    before = fingerprint(repo)
    proc = run_route(repo, write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "aider", "fast-aider"), tmp_path)
    assert fingerprint(repo) == before, "the agent ran in a worktree, not in the user's tree"
    requests = assert_reached_the_agent(fake_llm, "fast-aider")
    assert_verified_patch(proc, repo, tmp_path, "aider", len(requests))


def test_mini_swe_agent_preset_end_to_end(tmp_path: Path, fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-mini", replies=MINI_REPLIES)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    before = fingerprint(repo)
    proc = run_route(repo, write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "mini-swe-agent", "fast-mini"), tmp_path)
    assert fingerprint(repo) == before
    requests = assert_reached_the_agent(fake_llm, "fast-mini")
    assert len(requests) == 3, "mini-swe-agent took its three steps"
    assert "1 failed" in json.dumps(requests[1].json["messages"]), "it ran the failing test in the worktree and saw the result"
    assert_verified_patch(proc, repo, tmp_path, "mini-swe-agent", len(requests))
