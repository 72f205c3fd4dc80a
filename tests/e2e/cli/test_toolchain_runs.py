"""A task routed through small real repositories of each toolchain available here, with no
`verification:` in any policy: the checks are the ones detected from the repository's own files
(policy/toolchain.py), run in the worktree against the loopback model server."""

from __future__ import annotations

import json
import os
import shutil
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


# -- installed dependencies (node_modules) -------------------------------------------------------

TWICE_TEST_JS = """import { test } from 'node:test';
import assert from 'node:assert/strict';
import { twice } from 'tiny-twice';
import { add } from '../src/add.js';

test('adds twice', () => {
  assert.equal(twice(add(2, 3)), 10);
});
"""


def install_tiny_package(node_modules: Path) -> Path:
    """What `npm install` would leave: a package folder under node_modules (made by hand: no network)."""
    package = node_modules / "tiny-twice"
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "tiny-twice", "version": "1.0.0", "type": "module", "main": "index.js"}))
    (package / "index.js").write_text("export const twice = (x) => 2 * x;\n")
    return package


def make_node_repo_with_dependency(root: Path, ignore_node_modules: bool = True) -> Path:
    """A Node repository whose test needs a package the user installed in node_modules (never committed)."""
    make_node_repo(root)
    (root / "test" / "add.test.js").write_text(TWICE_TEST_JS)
    if ignore_node_modules:
        (root / ".gitignore").write_text("node_modules/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "test with tiny-twice")
    install_tiny_package(root / "node_modules")
    return root


def test_node_modules_the_user_installed_are_visible_to_the_checks(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_node_repo_with_dependency(tmp_path / "repo")
    fake_llm.script("fast-node", reply=NODE_FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = models_only_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-node", "strong-unused")
    before = (repo / "node_modules" / "tiny-twice" / "index.js").read_text()

    proc = run_cli(["--task", "fix add in src/add.js", "--policy", str(policy), "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["sandboxed"] is True
    assert out["result"] == "pass"
    assert "installed folders the checks see, read-only: node_modules" in proc.stderr, proc.stderr
    assert {c["name"]: c["status"] for c in out["attempts"][0]["checks"]} == {"tests": "pass", "lint": "pass"}
    assert (repo / "node_modules" / "tiny-twice" / "index.js").read_text() == before
    run_dir = tmp_path / "state" / "runs" / out["run_id"]
    assert "node_modules" not in (run_dir / "patch.diff").read_text()


def test_a_node_modules_link_out_of_the_repository_is_refused(tmp_path: Path, env: dict[str, str], fake_llm) -> None:  # type: ignore[no-untyped-def]
    repo = make_node_repo_with_dependency(tmp_path / "repo")
    shutil.rmtree(repo / "node_modules")
    outside = tmp_path / "outside"  # stands for ~/.ssh: a hostile repository's link must not show it to its tests
    install_tiny_package(outside)
    (outside / "secret.txt").write_text("not for the repository's tests\n")
    (repo / "node_modules").symlink_to(outside, target_is_directory=True)
    fake_llm.script("fast-node", reply=NODE_FIX_REPLY)
    fake_llm.script("strong-node", reply=NODE_FIX_REPLY)
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    policy = models_only_policy(tmp_path / "policy.yaml", fake_llm.base_url, "fast-node", "strong-node")

    proc = run_cli(["--task", "fix add in src/add.js", "--policy", str(policy)], env, repo)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert f"dependency folder node_modules resolves to {outside.resolve()}, outside the repository" in proc.stdout
    # nothing was bound, nor copied as a link: the test cannot find the package, in either lane
    # nothing was bound, nor copied in as the link it is: the test cannot import the package, in either lane
    # (the same repository with a real node_modules passes: test_node_modules_the_user_installed_are_visible_to_the_checks)
    assert proc.stdout.count("check tests: fail") == 2 and proc.stdout.count("check lint: pass") == 2, proc.stdout
    assert "installed folders the checks see" not in proc.stdout
    slots = [p for p in (tmp_path / "state" / "worktrees").glob("*/slot-*") if p.is_dir()]
    assert slots and not any(os.path.lexists(slot / "node_modules") for slot in slots)


def test_unsandboxed_agent_sees_node_modules_through_a_link_that_never_reaches_the_patch(  # type: ignore[no-untyped-def]
        tmp_path: Path, env: dict[str, str], fake_llm) -> None:
    """Without the sandbox the folder is a symlink in the worktree; node_modules is not even ignored
    here, so only its removal before the diff keeps it out of the patch, and it is never copied in."""
    repo = make_node_repo_with_dependency(tmp_path / "repo", ignore_node_modules=False)
    fix = "sed -i 's/a - b/a + b/' src/add.js"
    fake_llm.script("fast-agent", replies=[
        f"Fix it.\n\n```bash\n{fix}\n```\n", "Test it.\n\n```bash\nnpm test\n```\n", "Done.\n\n```bash\nsubmit\n```\n"])
    fake_llm.script("verifier-90", reply=VERIFIER_90)
    spec = f'provider: openai-compatible, base_url: "{fake_llm.base_url}", api_key_env: FAKE_LLM_KEY'
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""
models:
  fast: {{{spec}, model: fast-agent, executor: builtin}}
  strong: {{{spec}, model: strong-unused, executor: builtin}}
  verifier: {{{spec}, model: verifier-90}}
agent: {{allow_unsandboxed: true}}
verification: {{sandbox: "off"}}
""")
    # No bubblewrap on PATH (as on a machine without it): the agent's commands run unsandboxed too.
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("git", "node", "npm", "sed", "bash", "sh", "env"):
        found = shutil.which(tool)
        assert found is not None, f"{tool} is needed by this test"
        (tools / tool).symlink_to(found)
    env = {**env, "PATH": str(tools)}
    approved = run_cli(["policy", "approve", "--unsandboxed", "--yes", "--workspace", str(repo)], env, repo)
    assert approved.returncode == 0, approved.stderr

    proc = run_cli(["--task", "fix add in src/add.js", "--policy", str(policy), "--lane", "fast", "--json"], env, repo)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout)
    assert out["result"] == "pass" and out["sandboxed"] is False
    assert {c["name"]: c["status"] for c in out["attempts"][0]["checks"]} == {"tests": "pass", "lint": "pass"}
    transcript = tmp_path / "state" / "runs" / out["run_id"] / "agent" / "attempt-1.jsonl"
    seen = [json.loads(line)["content"] for line in transcript.read_text().splitlines()]
    (after_npm_test,) = [seen[i + 1] for i, text in enumerate(seen) if text.startswith("Test it.")]
    assert "exit code: 0" in after_npm_test, after_npm_test  # the agent's own `npm test` found the package
    patch = (tmp_path / "state" / "runs" / out["run_id"] / "patch.diff").read_text()
    assert "src/add.js" in patch and "node_modules" not in patch
    slots = [p for p in (tmp_path / "state" / "worktrees").glob("*/slot-*") if p.is_dir()]
    assert slots and not any(os.path.lexists(slot / "node_modules") for slot in slots), "the link outlived the lease"
