"""The demo's second half without a key: the same task, routed against a SCRIPTED model.

A loopback OpenAI-compatible server (tests/fakeserver, on 127.0.0.1) answers with recorded replies.
Both lanes run the built-in agent loop (the default executor): each reply holds one shell command,
which runs in the attempt's worktree inside the sandbox, and the next request carries its output. The
fast lane's agent "fixes" the task by skipping the new test, which the tamper check catches without
any model; the task escalates; the strong lane's agent starts from a clean worktree, runs the tests,
adds one for the give-up path, runs them again and submits; its edits pass the checks and the
(scripted) verifier. Nothing here is a real model: it shows every step of the loop in well under a
minute.

    python examples/scripted_demo.py DEMO_REPO [STATE_DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver.server import FakeLLMServer  # noqa: E402

TASK = "fix retry leak in sync worker"
TESTS = "python -m pytest -q -p no:cacheprovider tests/test_sync_worker.py"


def bash(thought: str, command: str) -> str:
    """One reply in the built-in agent's format: a thought and exactly one fenced bash block."""
    return f"{thought}\n\n```bash\n{command}\n```\n"


# The fast lane's recorded session: it makes the new test "pass" by skipping it.
FAST_REPLIES = [
    bash("Let me see the tests.", "grep -n '^def test_' tests/test_sync_worker.py"),
    bash("The new test is flaky; skip it for now.",
         "sed -i 's/^def test_failed_attempts_release_their_connection/@pytest.mark.skip(reason=\"flaky\")\\n&/' "
         "tests/test_sync_worker.py"),
    bash("Run the tests.", TESTS),
    bash("Done.", "submit"),
]

# The strong lane's recorded session: the give-up path must release every connection too, with a test.
GIVE_UP_TEST = """


def test_giving_up_releases_every_connection() -> None:
    pool = ConnectionPool(size=2)
    worker = SyncWorker(FlakyUpstream(99), OrderStore(), pool=pool, sleep=lambda s: None)
    with pytest.raises(TransientError):
        worker.fetch_batch(1)
    assert pool.in_use == 0
"""
STRONG_REPLIES = [
    bash("Run the sync worker's tests first.", TESTS),
    bash("Failed attempts release their connection; pin the give-up path as well.",
         f"cat >> tests/test_sync_worker.py <<'EOF'{GIVE_UP_TEST}EOF"),
    bash("Run them again.", TESTS),
    bash("Every attempt releases its connection, and a test pins it.", "submit"),
]

VERIFIER_REPLY = '{"verdict": "pass", "confidence": 0.9, "summary": "failed attempts and the give-up path release their connections", "concerns": []}'


def policy_text(base_url: str, allow_unsandboxed: bool) -> str:
    model = f'provider: openai-compatible, base_url: "{base_url}", api_key_env: ROUTE_AGENT_DEMO_KEY'
    check = (f"{{name: tests, kind: tests, run: [{sys.executable}, -m, pytest, -q, -p, no:cacheprovider, "
             "--junitxml=.route-agent/junit.xml], parser: junit, report: .route-agent/junit.xml, timeout_s: 120}")
    # Only where bubblewrap cannot run, and only in this policy the demo writes for itself (the user's
    # own, never a repository's): otherwise the agents would stop, saying how to install bubblewrap.
    agent = "agent: {allow_unsandboxed: true}\n" if allow_unsandboxed else ""
    return f"""# The scripted demo's policy: both lanes are the built-in agent on the loopback scripted model, as is the verifier.
models:
  fast: {{{model}, model: scripted-fast, executor: builtin, price_per_mtok: {{input: 0.8, output: 4.0}}}}
  strong: {{{model}, model: scripted-strong, executor: builtin, price_per_mtok: {{input: 3.0, output: 15.0}}}}
  verifier: {{{model}, model: scripted-verifier}}
verification:
  fast: [{check}]
  strong: [{check}]
{agent}"""


def main(argv: list[str]) -> int:
    repo = Path(argv[0]).resolve()
    state = Path(argv[1]).resolve() if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="route-agent-demo-"))
    server = FakeLLMServer().start()
    try:
        server.script("scripted-fast", replies=FAST_REPLIES)
        server.script("scripted-strong", replies=STRONG_REPLIES)
        server.script("scripted-verifier", reply=VERIFIER_REPLY)
        sandboxed = _sandbox_works()
        with tempfile.TemporaryDirectory(prefix="route-agent-demo-policy-") as tmp:
            policy = Path(tmp) / "scripted.yaml"
            policy.write_text(policy_text(server.base_url, allow_unsandboxed=not sandboxed))
            env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
            env.update(ROUTE_AGENT_DEMO_KEY="scripted-demo-not-a-key", ROUTE_AGENT_STATE_DIR=str(state),
                       ROUTE_AGENT_LEDGER=str(state / "demo-ledger.sqlite3"),
                       # The agents' `python -m pytest` is this Python, which has pytest.
                       PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]))
            route = [sys.executable, "-m", "route_agent"]
            if not sandboxed:
                print("(bubblewrap cannot run here: the demo repository's own tests and the agents' commands would "
                      "run unsandboxed; accepting that for this demo repository only)")
                subprocess.run([*route, "policy", "approve", "--unsandboxed", "--workspace", str(repo)], env=env, check=True)
            # The thresholds send this task to the strong lane; ask for the fast lane first to show the
            # cascade (allowed: no always-strong condition holds).
            command = [*route, "--task", TASK, "--workspace", str(repo), "--policy", str(policy), "--lane", "fast"]
            print(f"$ route-agent --task {TASK!r} --workspace {repo.name} --policy scripted.yaml --lane fast")
            proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            run_id = next((line.split()[1] for line in proc.stdout.splitlines() if line.startswith("run_id: ")), None)
            if proc.returncode != 0 or run_id is None:
                return proc.returncode or 1
            print("\nthe verified patch (route-agent apply " + run_id + " would write it into the repository):")
            sys.stdout.write((state / "runs" / run_id / "patch.diff").read_text())
            summary = json.dumps({"run_id": run_id, "state_dir": str(state)})
            print(f"\n{summary}")
    finally:
        server.stop()
    return 0


def _sandbox_works() -> bool:
    try:
        probe = subprocess.run(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
