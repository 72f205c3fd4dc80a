"""policies/schema.json is generated from the models and must be current; shipped examples are valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from route_agent.policy import check_policy_file, policy_json_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "policies" / "examples").glob("*.yaml"))


def test_checked_in_schema_is_current() -> None:
    checked_in = (ROOT / "policies" / "schema.json").read_text("utf-8")
    assert checked_in == policy_json_schema(), (
        "policies/schema.json is stale: run '.venv/bin/route-agent policy schema > policies/schema.json'")


def test_cli_prints_the_same_schema() -> None:
    out = subprocess.run([sys.executable, "-m", "route_agent", "policy", "schema"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out == (ROOT / "policies" / "schema.json").read_text("utf-8")


def test_schema_describes_the_policy_keys() -> None:
    schema = json.loads(policy_json_schema())
    assert {"models", "routing", "weights", "paths", "custom_rules", "budgets", "verification", "verifier"} <= set(
        schema["properties"])
    assert schema["additionalProperties"] is False


def test_there_are_example_policies() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in EXAMPLES])
def test_example_policy_passes_check(path: Path) -> None:
    loaded = check_policy_file(path)
    assert loaded.sources[-1] == str(path)
    proc = subprocess.run([sys.executable, "-m", "route_agent", "policy", "check", str(path)], capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{path}: ok")


def test_local_server_example_uses_base_url_and_key_env() -> None:
    policy = check_policy_file(ROOT / "policies" / "examples" / "local-openai-compatible.yaml").policy
    assert policy.models.fast.base_url and policy.models.strong.api_key_env == "VLLM_API_KEY"


def test_team_example_adds_rules_and_sensitive_paths() -> None:
    policy = check_policy_file(ROOT / "policies" / "examples" / "team-rules.yaml").policy
    assert {rule.name for rule in policy.custom_rules} == {"billing", "public_api"}
    assert "billing/" in policy.paths.sensitive
