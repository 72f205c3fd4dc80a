"""`route-agent init`: prints the detected checks; `--write` saves them as a repository policy that
validates, still needs approval, and never replaces an existing policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from route_agent.cli.main import cli
from route_agent.policy import PolicyCache, check_policy_file
from route_agent.workspace.approvals import repo_policy_needing_approval


def node_repo(root: Path) -> Path:
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "package.json").write_text(json.dumps({"scripts": {"test": "vitest run", "typecheck": "tsc --noEmit"}}))
    (root / "pnpm-lock.yaml").write_text("lockfileVersion: '9.0'\n")
    return root


def test_init_prints_the_detected_checks_and_writes_nothing(tmp_path: Path) -> None:
    repo = node_repo(tmp_path / "repo")
    result = CliRunner().invoke(cli, ["init", "--workspace", str(repo)])
    assert result.exit_code == 0, result.output
    assert "toolchains: node (pnpm)" in result.output
    assert "check tests (tests): pnpm test" in result.output
    assert "check typecheck (typecheck): pnpm run typecheck" in result.output
    assert not (repo / ".route-agent").exists()


def test_init_write_saves_a_repository_policy_that_still_needs_approval(tmp_path: Path) -> None:
    repo = node_repo(tmp_path / "repo")
    result = CliRunner().invoke(cli, ["init", "--workspace", str(repo), "--write"])
    assert result.exit_code == 0, result.output
    written = repo / ".route-agent" / "policy.yaml"
    assert "route-agent policy approve" in result.output
    policy = check_policy_file(written).policy
    assert [c.run for c in policy.verification.fast] == [["pnpm", "test"], ["pnpm", "run", "typecheck"]]
    assert [c.parser for c in policy.verification.strong] == ["exit-code", "problem-matcher"]
    loaded = PolicyCache().for_workspace(repo)
    assert repo_policy_needing_approval(repo, loaded.policy) is not None  # a repository policy: approve first


def test_init_write_never_replaces_a_policy(tmp_path: Path) -> None:
    repo = node_repo(tmp_path / "repo")
    (repo / ".route-agent").mkdir()
    mine = repo / ".route-agent" / "policy.yaml"
    mine.write_text("routing:\n  fast_max_score: 3\n")
    result = CliRunner().invoke(cli, ["init", "--workspace", str(repo), "--write"])
    assert result.exit_code == 2
    assert "already exists; nothing was written" in result.output
    assert mine.read_text() == "routing:\n  fast_max_score: 3\n"


def test_init_without_a_toolchain_says_no_verification_was_found(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# notes\n")
    result = CliRunner().invoke(cli, ["init", "--workspace", str(tmp_path)])
    assert result.exit_code == 0
    assert "toolchains: none found" in result.output and "no verification found" in result.output
    result = CliRunner().invoke(cli, ["init", "--workspace", str(tmp_path), "--write"])
    assert result.exit_code == 2 and "nothing to write" in result.output
    assert not (tmp_path / ".route-agent").exists()


def test_dry_run_shows_the_detected_checks_or_that_none_were_found(tmp_path: Path) -> None:
    repo = node_repo(tmp_path / "repo")
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "x"], check=True)
    (repo / "index.js").write_text("export const one = 1;\n")
    env = {"ROUTE_AGENT_STATE_DIR": str(tmp_path / "state"), "ROUTE_AGENT_CONFIG_DIR": str(tmp_path / "config"),
           "OPENROUTER_API_KEY": "", "OPENAI_API_KEY": ""}
    args = ["route", "--task", "tidy index.js", "--workspace", str(repo), "--dry-run"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "verification: pnpm test && pnpm run typecheck" in result.output
    (repo / "package.json").write_text(json.dumps({"scripts": {}}))
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "verification: no verification found" in result.output and "escalates to the strong lane" in result.output
