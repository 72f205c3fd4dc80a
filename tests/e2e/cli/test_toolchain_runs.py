"""A task routed through small real repositories of each toolchain available here, with no
`verification:` in any policy: the checks are the ones detected from the repository's own files
(policy/toolchain.py), run in the worktree against the loopback model server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.repos import FIX_REPLY, git, make_sync_repo

VERIFIER_90 = '{"verdict": "pass", "confidence": 0.9, "summary": "fixes it", "concerns": []}'

ADD_JS = "export const add = (a, b) => a - b;\n"
ADD_TEST_JS = """import { test } from 'node:test';
import assert from 'node:assert/strict';
import { add } from '../src/add.js';

test('adds', () => {
  assert.equal(add(2, 3), 5);
});
"""
NODE_FIX_REPLY = """Add instead of subtracting.

```diff
--- a/src/add.js
+++ b/src/add.js
@@ -1 +1 @@
-export const add = (a, b) => a - b;
+export const add = (a, b) => a + b;
```
"""
GO_MOD = "module example.com/calc\n\ngo 1.19\n"
GO_ADD = "package calc\n\n// Add returns the sum.\nfunc Add(a, b int) int {\n\treturn a - b\n}\n"
GO_TEST = 'package calc\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal("2+3")\n\t}\n}\n'
GO_FIX_REPLY = """Add instead of subtracting.

```diff
--- a/add.go
+++ b/add.go
@@ -3,4 +3,4 @@ package calc
 // Add returns the sum.
 func Add(a, b int) int {
-\treturn a - b
+\treturn a + b
 }
```
"""
CARGO_TOML = '[package]\nname = "calc"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n'
LIB_RS = """pub fn add(a: i32, b: i32) -> i32 {
    a - b
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(2, 3), 5);
    }
}
"""
RUST_FIX_REPLY = """Add instead of subtracting.

```diff
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,3 @@
 pub fn add(a: i32, b: i32) -> i32 {
-    a - b
+    a + b
 }
```
"""


def models_only_policy(path: Path, base_url: str, fast: str, strong: str) -> Path:
    """A policy with models and no `verification:`: the detected checks are the verification."""
    path.write_text(f"""
models:
  fast: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: {fast}, executor: oneshot}}
  strong: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: {strong}, executor: oneshot}}
  verifier: {{provider: openai-compatible, base_url: "{base_url}", api_key_env: FAKE_LLM_KEY, model: verifier-90}}
""")
    return path


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "route_agent", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=240, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    # `python` in a detected check is the interpreter running these tests (it has pytest).
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out.update(FAKE_LLM_KEY="test-key-not-secret-abc123", ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"),
               ROUTE_AGENT_CONFIG_DIR=str(tmp_path / "config"), ROUTE_AGENT_LEDGER=str(tmp_path / "ledger.sqlite3"))
    return out


def commit_all(root: Path, message: str) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "add", ".")
    git(root, "commit", "-qm", message)


def make_node_repo(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "src" / "add.js").write_text(ADD_JS)
    (root / "test" / "add.test.js").write_text(ADD_TEST_JS)
    (root / "package.json").write_text(json.dumps({
        "name": "calc", "version": "1.0.0", "type": "module", "private": True,
        "scripts": {"test": "node --test", "lint": "node --check src/add.js"},
    }, indent=2) + "\n")
    (root / "package-lock.json").write_text(json.dumps({"name": "calc", "version": "1.0.0", "lockfileVersion": 3,
                                                        "requires": True, "packages": {"": {"name": "calc", "version": "1.0.0"}}}))
    commit_all(root, "calc")
    return root


def test_node_repository_is_verified_with_its_npm_scripts(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_node_repo(tmp_path / "repo")
    fake_llm.script("fast-node", reply=NODE_FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = models_only_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-node", "strong-unused")

    dry = run_cli(["--task", "fix add in src/add.js", "--policy", str(policy), "--dry-run"], env, repo)
    assert dry.returncode == 0, dry.stderr
    assert "verification: npm test && npm run lint" in dry.stdout

    proc = run_cli(["--task", "fix add in src/add.js", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["result"] == "pass"
    assert [a["lane"] for a in out["attempts"]] == ["fast"]
    checks = {c["name"]: c["status"] for c in out["attempts"][0]["checks"]}
    assert checks == {"tests": "pass", "lint": "pass"}


def test_python_repository_is_verified_with_pytest(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = models_only_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-fixer", "strong-unused")

    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["result"] == "pass"
    assert out["verification"] == ["python -m pytest -q -p no:cacheprovider --junitxml=.route-agent/junit.xml"]
    assert [(c["name"], c["status"]) for c in out["attempts"][0]["checks"]] == [("tests", "pass")]


def test_python_repository_without_tests_is_weak_and_escalates(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_sync_repo(tmp_path / "repo")
    (repo / "tests" / "test_sync.py").unlink()
    (repo / "pyproject.toml").write_text('[project]\nname = "sync"\nversion = "0"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "no tests yet")
    fake_llm.script("fast-fixer", reply=FIX_REPLY)
    fake_llm.script("strong-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = models_only_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-fixer", "strong-fixer")

    proc = run_cli(["--task", "fix retry leak in sync worker", "--policy", str(policy), "--json"], env, repo)
    out = json.loads(proc.stdout)
    fast = out["attempts"][0]
    # pytest collected nothing (exit 5): a weak check, never a pass, so the fast attempt escalates
    assert [(c["name"], c["status"]) for c in fast["checks"]] == [("tests", "no-tests")]
    assert fast["passed"] is False and "unverified" in fast["escalation_reasons"]
    assert [a["lane"] for a in out["attempts"]] == ["fast", "strong"]


def test_go_repository_is_verified_with_go_test_and_vet(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "go.mod").write_text(GO_MOD)
    (repo / "add.go").write_text(GO_ADD)
    (repo / "add_test.go").write_text(GO_TEST)
    commit_all(repo, "calc")
    fake_llm.script("fast-go", reply=GO_FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = models_only_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-go", "strong-unused")

    proc = run_cli(["--task", "fix Add in add.go", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["result"] == "pass"
    assert [(c["name"], c["status"]) for c in out["attempts"][0]["checks"]] == [("tests", "pass"), ("vet", "pass")]


def test_rust_repository_is_verified_with_cargo_test_and_clippy(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "Cargo.toml").write_text(CARGO_TOML)
    (repo / "src" / "lib.rs").write_text(LIB_RS)
    (repo / ".gitignore").write_text("target/\nCargo.lock\n")
    commit_all(repo, "calc")
    fake_llm.script("fast-rust", reply=RUST_FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = models_only_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-rust", "strong-unused")

    proc = run_cli(["--task", "fix add in src/lib.rs", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["result"] == "pass"
    assert [(c["name"], c["status"]) for c in out["attempts"][0]["checks"]] == [("tests", "pass"), ("clippy", "pass")]
