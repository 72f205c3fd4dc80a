"""An external agent's command in the sandbox: placeholders, the one key it gets, the shared network,
the confined filesystem, timeouts, and no run at all without a sandbox unless the user allowed it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from route_agent.lanes import agent as agent_mod
from route_agent.lanes.external import ExternalRun, run_external_agent
from route_agent.policy.models import ExternalAgent, ModelSpec
from route_agent.verify.checks import SandboxInfo, probe_sandbox

LANE_KEY = "lane-key-for-the-agent-0123456789"


@pytest.fixture(autouse=True)
def sandbox_available() -> None:
    info = probe_sandbox()
    assert info.available, f"these tests need bubblewrap (scripts/setup-system.sh installs it): {info.reason}"


def worktree(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def spec(base_url: str = "http://127.0.0.1:9/v1") -> ModelSpec:
    return ModelSpec(provider="openai-compatible", model="routed-model", base_url=base_url, api_key_env="LANE_KEY",
                     max_context_tokens=16000)


def run_of(root: Path, script: str, **kw: object) -> ExternalRun:
    agent = ExternalAgent(command=["bash", "-c", script, "agent", "{model}", "{base_url}", "{brief_file}", "{workdir}", "{scratch}"],
                          key_env="OPENAI_API_KEY", timeout_s=float(kw.pop("timeout_s", 60)),  # type: ignore[arg-type]
                          env={"AGENT_MODEL": "{model}"}, files={"meta.json": '{"{model}": {max_context_tokens}}'})
    environ = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root.parent), "LANE_KEY": LANE_KEY,
               "ANTHROPIC_API_KEY": "not-for-the-agent", "GITHUB_TOKEN": "not-for-the-agent-either"}
    return ExternalRun(name="probe", agent=agent, spec=kw.pop("model_spec", spec()), worktree=root,  # type: ignore[arg-type]
                       brief="make add() add", findings=["[check] tests: test_add failed"], tried=["pytest -q -> exit 1"],
                       environ=environ, **kw)  # type: ignore[arg-type]


async def test_placeholders_the_lane_key_only_and_files(tmp_path: Path) -> None:
    root = worktree(tmp_path)
    script = ('printf "%s\\n" "$@" > args.txt; env | sort > env.txt; cat "$3" > brief.txt; cat "$5/meta.json" > meta.txt; '
              'echo "home=$HOME" >> env.txt')
    outcome = await run_external_agent(run_of(root, script))
    assert outcome.status == "finished" and outcome.sandboxed, outcome.message
    args = (root / "args.txt").read_text().splitlines()
    assert args[0] == "routed-model" and re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", args[1]), "{base_url} is the relay"
    assert args[3] == str(root)
    env = (root / "env.txt").read_text()
    assert re.search(r"^OPENAI_API_KEY=route-agent-relay-\S+$", env, re.M), "key_env holds the relay's token"
    assert "AGENT_MODEL=routed-model" in env
    assert LANE_KEY not in env, "the lane's key never enters the sandbox"
    assert "not-for-the-agent" not in env and "LANE_KEY=" not in env
    assert f"home={args[4]}" in env, "HOME is the agent's scratch directory"
    brief = (root / "brief.txt").read_text()
    assert "make add() add" in brief and "test_add failed" in brief and "pytest -q -> exit 1" in brief
    assert (root / "meta.txt").read_text() == '{"routed-model": 16000}'
    assert LANE_KEY not in " ".join(outcome.argv) + outcome.output


async def test_the_network_is_shared_but_the_filesystem_is_confined(tmp_path: Path, fake_llm) -> None:  # type: ignore[no-untyped-def]
    root = worktree(tmp_path)
    outside = tmp_path / "outside.txt"
    script = (f'{sys.executable} -c "import os, urllib.request as u; print(u.urlopen(u.Request(\'$2/models\', '
              'headers={\'Authorization\': \'Bearer \' + os.environ[\'OPENAI_API_KEY\']})).status)" > net.txt; '
              f'echo x > {outside} 2> /dev/null || echo blocked > write.txt; echo y > {root}/.git/hooks/pre-commit 2> /dev/null || '
              'echo blocked > git.txt')
    outcome = await run_external_agent(run_of(root, script, model_spec=spec(fake_llm.base_url)))
    assert outcome.status == "finished", outcome.output
    assert (root / "net.txt").read_text().strip() == "200"
    assert (root / "write.txt").read_text().strip() == "blocked" and not outside.exists()
    assert (root / "git.txt").read_text().strip() == "blocked"


async def test_a_failing_or_slow_agent_is_reported(tmp_path: Path) -> None:
    root = worktree(tmp_path)
    failed = await run_external_agent(run_of(root, f"echo key is {LANE_KEY}; exit 3"))
    assert failed.status == "failed" and failed.exit_code == 3 and LANE_KEY not in failed.output
    slow = await run_external_agent(run_of(root, "sleep 30", timeout_s=1))
    assert slow.status == "timeout" and "timeout_s of 1 s" in slow.message


async def test_no_sandbox_means_no_agent_unless_the_user_allowed_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = worktree(tmp_path)
    monkeypatch.setattr(agent_mod, "probe_sandbox", lambda: SandboxInfo(False, "bubblewrap (bwrap) is not installed"))
    refused = await run_external_agent(run_of(root, "touch ran.txt"))
    assert refused.status == "sandbox_unavailable" and not (root / "ran.txt").exists()
    assert "the probe agent runs every command in the bubblewrap sandbox" in refused.message
    allowed = await run_external_agent(run_of(root, "touch ran.txt", allow_unsandboxed=True))
    assert allowed.status == "finished" and not allowed.sandboxed and (root / "ran.txt").exists()


async def test_a_missing_lane_key_is_a_clear_error(tmp_path: Path) -> None:
    root = worktree(tmp_path)
    run = run_of(root, "touch ran.txt")
    run.environ = {"PATH": "/usr/bin:/bin"}
    outcome = await run_external_agent(run)
    assert outcome.status == "config" and "LANE_KEY is not set" in outcome.message and not (root / "ran.txt").exists()
