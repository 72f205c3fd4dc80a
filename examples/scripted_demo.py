"""The demo's second half without a key: the same task, routed against a SCRIPTED model.

A loopback OpenAI-compatible server (tests/fakeserver, on 127.0.0.1) answers with recorded replies:
the fast lane "fixes" the task by skipping a test, which the tamper check catches without any model;
the task escalates; the strong lane's patch passes its checks and the (scripted) verifier. Nothing
here is a real model: it shows every step of the loop in well under a minute.

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

# The fast lane's recorded reply: it makes the new test "pass" by skipping it.
FAST_REPLY = """The new test is flaky; skip it for now.

```diff
--- a/tests/test_sync_worker.py
+++ b/tests/test_sync_worker.py
@@ -29,6 +29,7 @@ def test_gives_up_after_the_last_attempt() -> None:
         worker.fetch_batch(1)
 
 
+@pytest.mark.skip(reason="flaky")
 def test_failed_attempts_release_their_connection() -> None:
     pool = ConnectionPool(size=2)
     worker = SyncWorker(FlakyUpstream(3), OrderStore(), pool=pool, sleep=lambda s: None)
```
"""

# The strong lane's recorded reply: the give-up path must release every connection too, with a test.
STRONG_REPLY = """Every attempt now releases its connection; this pins the give-up path as well.

```diff
--- a/tests/test_sync_worker.py
+++ b/tests/test_sync_worker.py
@@ -34,3 +34,11 @@ def test_failed_attempts_release_their_connection() -> None:
     worker = SyncWorker(FlakyUpstream(3), OrderStore(), pool=pool, sleep=lambda s: None)
     assert worker.run_once(7) == 1
     assert pool.in_use == 0
+
+
+def test_giving_up_releases_every_connection() -> None:
+    pool = ConnectionPool(size=2)
+    worker = SyncWorker(FlakyUpstream(99), OrderStore(), pool=pool, sleep=lambda s: None)
+    with pytest.raises(TransientError):
+        worker.fetch_batch(1)
+    assert pool.in_use == 0
```
"""

VERIFIER_REPLY = '{"verdict": "pass", "confidence": 0.9, "summary": "failed attempts and the give-up path release their connections", "concerns": []}'


def policy_text(base_url: str) -> str:
    model = f'provider: openai-compatible, base_url: "{base_url}", api_key_env: ROUTE_AGENT_DEMO_KEY, executor: oneshot'
    check = (f"{{name: tests, kind: tests, run: [{sys.executable}, -m, pytest, -q, -p, no:cacheprovider, "
             "--junitxml=.route-agent/junit.xml], parser: junit, report: .route-agent/junit.xml, timeout_s: 120}")
    return f"""# The scripted demo's policy: both lanes and the verifier are the loopback scripted model.
models:
  fast: {{{model}, model: scripted-fast, price_per_mtok: {{input: 0.8, output: 4.0}}}}
  strong: {{{model}, model: scripted-strong, price_per_mtok: {{input: 3.0, output: 15.0}}}}
  verifier: {{{model}, model: scripted-verifier}}
verification:
  fast: [{check}]
  strong: [{check}]
"""


def main(argv: list[str]) -> int:
    repo = Path(argv[0]).resolve()
    state = Path(argv[1]).resolve() if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="route-agent-demo-"))
    server = FakeLLMServer().start()
    try:
        server.script("scripted-fast", reply=FAST_REPLY)
        server.script("scripted-strong", reply=STRONG_REPLY)
        server.script("scripted-verifier", reply=VERIFIER_REPLY)
        with tempfile.TemporaryDirectory(prefix="route-agent-demo-policy-") as tmp:
            policy = Path(tmp) / "scripted.yaml"
            policy.write_text(policy_text(server.base_url))
            env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
            env.update(ROUTE_AGENT_DEMO_KEY="scripted-demo-not-a-key", ROUTE_AGENT_STATE_DIR=str(state),
                       ROUTE_AGENT_LEDGER=str(state / "demo-ledger.sqlite3"))
            route = [sys.executable, "-m", "route_agent"]
            if not _sandbox_works():
                print("(bubblewrap cannot run here: the demo repository's own tests would run unsandboxed; "
                      "accepting that for this demo repository only)")
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
