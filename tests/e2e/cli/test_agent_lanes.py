"""Lanes that are agents, end to end through the CLI against the scripted model server on 127.0.0.1:
the built-in loop runs real commands in the sandboxed worktree, one per model reply, until `submit`;
its worktree diff is verified from scratch (checks, tamper, verifier), escalation starts the strong
lane from a clean worktree with the findings and what was tried, and the ledger counts the steps.
The model is scripted: these tests show the machinery, not a model's quality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO_ROOT
from support.repos import fingerprint, git, held_worktrees, make_sync_repo
from support.wait import wait_until

VERIFIER_90 = '{"verdict": "pass", "confidence": 0.9, "summary": "releases the connection", "concerns": []}'
KEY = "sk-" + "Zx9yWv8uTs7rQp6oNm5lKj4iHg3fEd2cBa1zYx0wVu9tSr8q"
PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"
FIX = "python3 - <<'EOF'\nimport pathlib\np = pathlib.Path('app/sync.py')\np.write_text(p.read_text().replace('        done += 1\\n', '        done += 1\\n        pool.release()\\n'))\nEOF"
SKIP = "sed -i 's/^def test_sync_releases_connections/import pytest\\n@pytest.mark.skip(reason=\"flaky\")\\ndef test_sync_releases_connections/' tests/test_sync.py"


def bash(command: str, thought: str = "Next step.") -> str:
    return f"{thought}\n\n```bash\n{command}\n```\n"


SUBMIT = bash("submit", "Done.")


def write_policy(path: Path, base_url: str, fast: str, strong: str, extra: str = "") -> Path:
    check = (
        f"{{name: tests, kind: tests, run: [{sys.executable}, -m, pytest, -q, -p, no:cacheprovider, --junitxml=.route-agent/junit.xml], "
        "parser: junit, report: .route-agent/junit.xml, timeout_s: 120}"
    )
    spec = f'provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY'
    path.write_text(f"""
models:
  fast: {{{spec}, model: {fast}, price_per_mtok: {{input: 1.0, output: 5.0}}}}
  strong: {{{spec}, model: {strong}, price_per_mtok: {{input: 3.0, output: 15.0}}}}
  verifier: {{{spec}, model: verifier-90, executor: oneshot}}
verification:
  fast: [{check}]
  strong: [{check}]
{extra}
""")
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    out.update(FAKE_LLM_KEY="test-key-not-secret-abc123", ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"),
               ROUTE_AGENT_CONFIG_DIR=str(tmp_path / "config"), ROUTE_AGENT_LEDGER=str(tmp_path / "ledger.sqlite3"))
    return out


def route(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "route_agent", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=240,
                          check=False)


def user_messages(fake_llm, model: str) -> list[list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    return [r.json["messages"] for r in fake_llm.requests if r.model == model]


def test_builtin_agent_looks_runs_the_failing_test_edits_reruns_and_submits(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-agent", replies=[
        bash("ls -R app tests", "Let me look around."),
        bash(f"{PYTEST} tests/test_sync.py", "Run the failing test."),
        bash(FIX, "The connection is never released; release it."),
        bash(f"{PYTEST} tests/test_sync.py", "Run it again."),
        SUBMIT,
    ])
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-agent", "strong-agent")
    before = fingerprint(repo)

    proc = route(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--lane", "fast"], env, repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "step 1/40: ls -R app tests -> exit 0" in out
    steps = {line.strip().split(":", 1)[0]: line.strip() for line in out.splitlines() if line.strip().startswith("step ")}
    assert steps["step 2/40"].startswith(f"step 2/40: {sys.executable} -m pytest") and " -> exit 1, " in steps["step 2/40"]
    assert steps["step 4/40"].startswith(f"step 4/40: {sys.executable} -m pytest") and " -> exit 0, " in steps["step 4/40"]
    assert "step 5/40: submit" in out
    assert "result: pass" in out
    # The model saw the failing test's output, then the passing one.
    conversation = user_messages(fake_llm, "fast-agent")[-1]
    assert "exit code: 1" in conversation[5]["content"] and "1 failed" in conversation[5]["content"]
    assert "exit code: 0" in conversation[9]["content"] and "2 passed" in conversation[9]["content"]
    assert fingerprint(repo) == before, "the user's tree changed before they applied anything"
    assert not held_worktrees(tmp_path / "state"), "a worktree is still held after the run"

    run_id = out.split("run_id: ", 1)[1].split()[0]
    transcript = tmp_path / "state" / "runs" / run_id / "agent" / "attempt-1.jsonl"
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [line["role"] for line in lines[:3]] == ["system", "user", "assistant"] and lines[-1]["content"] == SUBMIT

    ledger = json.loads(route(["ledger", "report", "--json"], env, repo).stdout)
    (fast,) = [lane for lane in ledger["lanes"] if lane["lane"] == "fast"]
    assert fast["steps"] == 5 and fast["passed"] == 1

    applied = route(["apply", run_id], env, repo)
    assert applied.returncode == 0, applied.stderr
    assert "pool.release()" in (repo / "app" / "sync.py").read_text()


def test_an_agent_that_skips_the_failing_test_is_caught_and_the_strong_lane_starts_clean(
        tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-skipper", replies=[bash(f"{PYTEST} tests/test_sync.py"), bash(SKIP), bash(f"{PYTEST} tests/test_sync.py"),
                                             bash("echo scratch > notes.txt"), SUBMIT])
    fake_llm.script("strong-fixer", replies=[bash("grep -n skip tests/test_sync.py || echo no-skip-here; ls notes.txt || echo no-notes"),
                                             bash(FIX), SUBMIT])
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-skipper", "strong-fixer")

    proc = route(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--lane", "fast", "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    fast, strong = data["attempts"]
    assert fast["escalated"] is True and "tamper" in fast["escalation_reasons"]
    assert strong["passed"] is True
    assert "step 2/40: sed -i" in proc.stderr and "escalation: fast -> strong" in proc.stderr
    strong_first = user_messages(fake_llm, "strong-fixer")[0][1]["content"]
    assert "What the previous attempt ran" in strong_first and "sed -i" in strong_first and "-> exit 1" in strong_first
    assert "Problems found in the previous attempt" in strong_first
    # A clean worktree: the fast attempt's skip marker is not there for the strong lane.
    first_look = user_messages(fake_llm, "strong-fixer")[1][-1]["content"]
    assert "no-skip-here" in first_look and "no-notes" in first_look, first_look


def test_a_key_printed_by_a_command_is_redacted_in_every_later_request(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    (repo / ".env").write_text(f"OPENAI_API_KEY={KEY}\n")
    (repo / "tests" / "show_key.py").write_text(f"print('the key is {KEY}')\n")
    git(repo, "add", ".env", "tests/show_key.py")
    git(repo, "commit", "-qm", "local settings")
    fake_llm.script("fast-agent", replies=[bash("cat .env"), bash("python3 tests/show_key.py"), bash(FIX), SUBMIT])
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-agent", "strong-agent")
    proc = route(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--lane", "fast"], env, repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bodies = [r.body for r in fake_llm.requests if r.model == "fast-agent"]
    assert len(bodies) == 4
    assert all(KEY not in body for body in bodies)
    assert "WITHHELD" in bodies[1] and "[REDACTED:" in bodies[2] and "[REDACTED:" in bodies[3]


def test_an_agent_that_loops_until_max_steps_gets_a_finding_and_escalates(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-looper", replies=[bash("ls")])
    fake_llm.script("strong-fixer", replies=[bash(FIX), SUBMIT])
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-looper", "strong-fixer", "agent: {max_steps: 3}")
    proc = route(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--lane", "fast", "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    fast, strong = data["attempts"]
    assert fast["escalated"] is True and strong["passed"] is True
    assert "[patch/agent_max_steps] fast lane agent: the agent used all 3 steps without submitting" in proc.stderr
    assert fast["result"] == "patch_rejected" and fast["steps"] == 3 and fast["executor"] == "builtin"
    assert len([r for r in fake_llm.requests if r.model == "fast-looper"]) == 3
    assert "step 3/3: ls -> exit 0" in proc.stderr


def test_sigint_mid_command_kills_it_and_leaves_nothing(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    marker = f"ra-agent-sigint-{os.getpid()}"
    fake_llm.script("fast-sleeper", replies=[bash(f"touch started && exec -a {marker} sleep 120")])
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-sleeper", "strong-agent")
    before = fingerprint(repo)
    proc = subprocess.Popen([sys.executable, "-m", "route_agent", "--task", "fix retry leak in sync worker", "--policy", str(policy),
                             "--lane", "fast"], env=env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: list((tmp_path / "state" / "worktrees").glob("*/*/started")), timeout=60, what="the command to start")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "cancelled" in stderr
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    assert left.stdout == "", "the agent's command outlived the cancellation"
    assert not held_worktrees(tmp_path / "state"), "a worktree is still held after the run"
    assert fingerprint(repo) == before


DEMO_TEST = '''cat >> tests/test_sync_worker.py <<'EOF'


def test_a_successful_batch_releases_its_connection() -> None:
    pool = ConnectionPool(size=10)
    SyncWorker(FlakyUpstream(0), OrderStore(), pool=pool, sleep=lambda s: None).run_once(1)
    assert pool.in_use == 0
EOF'''


def test_the_bundled_demo_runs_a_whole_routed_task_with_the_builtin_agent(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    demo = tmp_path / "demo-repo"
    root = REPO_ROOT
    subprocess.run(["bash", str(root / "examples" / "make-demo-repo.sh"), str(demo)], check=True, capture_output=True, timeout=120)
    fake_llm.script("strong-agent", replies=[bash("ls demo_service tests"), bash(PYTEST), bash(DEMO_TEST), bash(PYTEST), SUBMIT])
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = write_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-agent", "strong-agent")
    before = fingerprint(demo)
    proc = route(["--task", "fix retry leak in sync worker", "--workspace", str(demo), "--policy", str(policy), "--json"], env, demo)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["risk_score"], data["lane"], data["result"]) == (7, "strong", "pass")
    (attempt,) = data["attempts"]
    assert (attempt["executor"], attempt["steps"], attempt["passed"]) == ("builtin", 5, True)
    assert [c["status"] for c in attempt["checks"]] == ["pass"]
    assert " -> exit 0, " in next(line for line in proc.stderr.splitlines() if "step 2/40:" in line), "the demo's tests pass in the worktree"
    assert fingerprint(demo) == before


def test_an_agent_command_in_a_repository_policy_needs_approval(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    marker = tmp_path / "agent-ran"
    (repo / ".route-agent.yaml").write_text(f"""
agents:
  sneaky: {{command: [touch, "{marker}"]}}
models:
  fast: {{provider: openai-compatible, base_url: "{fake_llm.base_url}", api_key_env: FAKE_LLM_KEY, model: fast-agent, executor: sneaky}}
""")
    git(repo, "add", ".route-agent.yaml")
    git(repo, "commit", "-qm", "a policy with an agent")
    proc = route(["--task", "fix retry leak in sync worker", "--lane", "fast"], env, repo)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "you have not approved" in proc.stderr and "nothing was run" in proc.stderr.replace("\n", " "), proc.stderr
    assert not marker.exists() and fake_llm.requests == []
    listed = route(["policy", "approve", "--workspace", str(repo)], env, repo)
    assert f"[agent] sneaky: touch {marker}" in listed.stdout + listed.stderr
