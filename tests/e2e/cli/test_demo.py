"""The bundled demo: make-demo-repo.sh builds a repository whose pending change routes as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "examples" / "make-demo-repo.sh"


@pytest.fixture(params=[pytest.param("absolute", id="absolute-dest"), pytest.param("relative", id="relative-dest")])
def demo_repo(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    # scripts/demo.sh passes a relative path, so both forms must work.
    dest = tmp_path / "demo-repo"
    arg = str(dest) if request.param == "absolute" else "demo-repo"
    subprocess.run(["bash", str(SCRIPT), arg], check=True, capture_output=True, timeout=120, cwd=tmp_path)
    return dest


def test_demo_repo_has_one_commit_and_a_pending_change(demo_repo: Path) -> None:
    log = subprocess.run(["git", "log", "--oneline"], cwd=demo_repo, capture_output=True, text=True, check=True).stdout
    assert len(log.splitlines()) == 1
    status = subprocess.run(["git", "status", "--porcelain"], cwd=demo_repo, capture_output=True, text=True,
                            check=True).stdout
    assert sorted(line.split()[-1] for line in status.splitlines()) == [
        "demo_service/pool.py", "demo_service/retry.py", "demo_service/sync_worker.py", "tests/test_sync_worker.py"]


def test_demo_tests_pass_with_the_pending_fix(demo_repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=demo_repo,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout


def test_readme_command_on_the_demo(demo_repo: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["ROUTE_AGENT_STATE_DIR"] = str(tmp_path / "state")
    env["ROUTE_AGENT_CONFIG_DIR"] = str(tmp_path / "config")
    proc = subprocess.run([sys.executable, "-m", "route_agent", "--task", "fix retry leak in sync worker",
                           "--workspace", str(demo_repo), "--json"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["signals"]["files_touched"] == 4
    assert data["signals"]["has_schema_change"] is False and data["signals"]["has_auth_code"] is False
    assert data["signals"]["needs_new_code"] is True
    assert (data["risk_score"], data["lane"], data["result"]) == (7, "strong", "dry-run")


def test_make_demo_repo_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "mine")], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "not a demo repository" in proc.stderr


def test_make_demo_repo_replaces_an_earlier_demo(demo_repo: Path) -> None:
    subprocess.run(["bash", str(SCRIPT), str(demo_repo)], check=True, capture_output=True, timeout=120)
    assert (demo_repo / ".git").is_dir()


def test_demo_script_word_for_word_without_a_key() -> None:
    """`bash scripts/demo.sh`, the README's first command, as a newcomer without a key runs it: the dry
    run, then the whole loop against the scripted model, both lanes the built-in agent (default
    executor) running real commands in the sandboxed worktree: tamper catch, escalation, a verified patch."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("ROUTE_AGENT_")}
    env["HOME"] = os.environ.get("HOME", "/root")
    proc = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    dry, _, scripted = out.partition("== No OPENROUTER_API_KEY: the same task against a SCRIPTED model")
    assert "result: dry-run" in dry and "dry run: OPENROUTER_API_KEY is not set" in dry
    assert "attempt 1: fast lane (scripted-fast)" in scripted
    fast, _, strong = scripted.partition("attempt 2: strong lane (scripted-strong)")
    # The fast lane's agent: one step per scripted reply, each a command run in its worktree.
    assert "step 2/40: sed -i 's/^def test_failed_attempts_release_their_connection/" in fast
    assert "step 3/40: python -m pytest -q -p no:cacheprovider tests/test_sync_worker.py -> exit 0, " in fast
    assert "step 4/40: submit" in fast and "agent (builtin): submitted after 4 step(s)" in fast
    assert "[tamper/skip-marker]" in fast and "escalation: fast -> strong (tamper)" in fast
    # The strong lane's agent starts clean (its first test run passes, nothing skipped), adds a test, submits.
    assert "step 1/40: python -m pytest -q -p no:cacheprovider tests/test_sync_worker.py -> exit 0, " in strong
    assert "step 2/40: cat >> tests/test_sync_worker.py <<'EOF'" in strong
    assert "agent (builtin): submitted after 4 step(s)" in strong and "result: pass" in strong
    assert "+def test_giving_up_releases_every_connection() -> None:" in scripted
    demo_repo = REPO_ROOT / "examples" / "demo-repo"
    assert "test_giving_up_releases_every_connection" not in (demo_repo / "tests" / "test_sync_worker.py").read_text(), \
        "the demo applied the patch to the repository without being asked"
