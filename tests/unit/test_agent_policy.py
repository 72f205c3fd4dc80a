"""The policy side of agent lanes: executors, agent limits and their per-lane overrides, external
agents as commands that need approval, and `allow_unsandboxed` honoured only from the user's policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from route_agent.lanes.external import base_url_for, fill_placeholders
from route_agent.policy import PolicyCache, PolicyError, check_policy_file
from route_agent.policy.approval import policy_commands, repo_declared_commands, unsandboxed_opt_in_trusted
from route_agent.policy.loader import read_layer
from route_agent.policy.models import ModelSpec

AIDER = '[aider, --yes-always, --no-git, --model, "openai/{model}", --openai-api-base, "{base_url}", --message-file, "{brief_file}"]'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_default_executor_is_the_builtin_loop_and_limits_merge_per_lane(tmp_path: Path) -> None:
    policy = check_policy_file(write(tmp_path / "p.yaml", """
agent: {max_steps: 25, command_timeout_s: 60}
models:
  fast: {provider: openai, model: m, agent: {max_steps: 10}}
  strong: {provider: openai, model: m2, executor: oneshot}
""")).policy
    assert policy.models.fast.executor == "builtin" and policy.models.strong.executor == "oneshot"
    fast, strong = policy.agent_limits("fast"), policy.agent_limits("strong")
    assert (fast.max_steps, fast.command_timeout_s) == (10, 60)
    assert (strong.max_steps, strong.command_timeout_s) == (25, 60)
    assert fast.allow_unsandboxed is False


def test_an_unknown_executor_is_an_error_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "models:\n  fast:\n    provider: openai\n    model: m\n    executor: aidr\n")
    with pytest.raises(PolicyError) as info:
        check_policy_file(path)
    issue = info.value.issues[0]
    assert issue.line == 5 and "models.fast.executor 'aidr' is not builtin, oneshot or an agent under `agents:`" in issue.message


def test_a_lane_may_name_an_external_agent(tmp_path: Path) -> None:
    policy = check_policy_file(write(tmp_path / "p.yaml", f"""
agents:
  aider: {{command: {AIDER}, key_env: OPENAI_API_KEY, timeout_s: 900}}
models:
  fast: {{provider: openai-compatible, base_url: "http://127.0.0.1:9/v1/", model: m, executor: aider}}
""")).policy
    assert policy.models.fast.executor == "aider" and policy.agents["aider"].timeout_s == 900
    values = {"model": "m", "base_url": base_url_for(policy.models.fast), "brief_file": "/tmp/b.md", "workdir": "/w"}
    argv = [fill_placeholders(a, values) for a in policy.agents["aider"].command]
    assert argv[3:] == ["--model", "openai/m", "--openai-api-base", "http://127.0.0.1:9/v1", "--message-file", "/tmp/b.md"]


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        pytest.param({"provider": "openrouter", "model": "x"}, "https://openrouter.ai/api/v1", id="openrouter"),
        pytest.param({"provider": "openai", "model": "x"}, "https://api.openai.com/v1", id="openai"),
        pytest.param({"provider": "openai-compatible", "model": "x", "base_url": "http://127.0.0.1:8000/v1/chat/completions"},
                     "http://127.0.0.1:8000/v1", id="full-endpoint"),
    ],
)
def test_base_url_placeholder(spec: dict[str, str], url: str) -> None:
    assert base_url_for(ModelSpec.model_validate(spec)) == url


def test_agent_commands_are_commands_that_need_approval(tmp_path: Path) -> None:
    path = write(tmp_path / "repo" / ".route-agent.yaml", f"""
agents:
  aider: {{command: {AIDER}, env: {{AIDER_ANALYTICS: "false"}}}}
""")
    layer = read_layer(path)
    assert repo_declared_commands(layer.data) == 1
    policy = PolicyCache().for_workspace(tmp_path / "repo").policy
    agent_commands = [c for c in policy_commands(policy) if c.lane == "agent"]
    assert [(c.name, c.run[:2]) for c in agent_commands] == [("aider", ("AIDER_ANALYTICS=false", "aider"))]
    assert agent_commands[0].line().startswith("[agent] aider: AIDER_ANALYTICS=false aider --yes-always")


def test_allow_unsandboxed_from_a_repository_policy_is_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    user = write(tmp_path / "config" / "policy.yaml", "agent: {allow_unsandboxed: true}\n")
    cache = PolicyCache()
    alone = cache.for_workspace(root, user=user)
    assert alone.policy.agent.allow_unsandboxed and unsandboxed_opt_in_trusted(root, alone.sources)

    write(root / ".route-agent.yaml", "models:\n  fast: {provider: openai, model: m, agent: {allow_unsandboxed: true}}\n")
    with_repo = cache.for_workspace(root, user=tmp_path / "missing.yaml")
    assert unsandboxed_opt_in_trusted(root, with_repo.sources) is False, "a repository cannot opt the user out of the sandbox"

    both = cache.for_workspace(root, user=user)
    assert unsandboxed_opt_in_trusted(root, both.sources) is True, "the user's own opt-in still counts"

    explicit = write(tmp_path / "mine.yaml", "agent: {allow_unsandboxed: true}\n")
    chosen = cache.for_workspace(root, explicit=explicit)
    assert unsandboxed_opt_in_trusted(root, chosen.sources) is True, "a --policy file the user chose is theirs"


def test_a_repository_policy_cannot_raise_agent_limits_or_opt_out_of_the_sandbox(tmp_path: Path) -> None:
    from route_agent.policy.strictness import restrict

    trusted = check_policy_file(write(tmp_path / "user.yaml", "agent: {max_steps: 20}\n")).policy
    proposed = trusted.model_validate({**trusted.model_dump(), "agent": {**trusted.agent.model_dump(), "max_steps": 500,
                                                                         "allow_unsandboxed": True, "command_timeout_s": 30},
                                       "models": {**trusted.models.model_dump(), "fast": {**trusted.models.fast.model_dump(),
                                                                                          "agent": {"wall_timeout_s": 86400}}}})
    kept, lowered = restrict(trusted, proposed)
    assert {item.key for item in lowered} == {"agent.max_steps", "agent.allow_unsandboxed", "models.fast.agent.wall_timeout_s"}
    assert (kept.agent.max_steps, kept.agent.allow_unsandboxed, kept.agent.command_timeout_s) == (20, False, 30)
    assert kept.agent_limits("fast").wall_timeout_s == trusted.agent.wall_timeout_s
