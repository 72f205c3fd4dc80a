"""Prompt assembly: the never-send list, secret redaction with the line named, trimming."""

from __future__ import annotations

from pathlib import Path

import pytest

from route_agent.lanes.prompt import build_prompt, never_send_reason
from route_agent.policy.models import ModelSpec
from route_agent.workspace.git import collect_change_set, open_repo
from support.repos import git

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
ENV_SECRET = "env-value-that-must-stay-home-123"
RSA_BODY = "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpF"
PEM_BODY = "MIIBkTCB+wIJAKHHIG1234pemcontentstayshome"





@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "app.py").write_text("def greet():\n    return 'hi'\n")
    (root / ".gitignore").write_text("build/\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    return root


def spec(**kw: object) -> ModelSpec:
    return ModelSpec(provider="openai-compatible", model="m", base_url="http://127.0.0.1:1/v1", **kw)  # type: ignore[arg-type]


def sent_text(prompt: object) -> str:
    return "\n".join(m["content"] for m in prompt.messages)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("path", "blocked"), [
    pytest.param(".env", True, id="env"),
    pytest.param("config/.env.production", True, id="env-nested"),
    pytest.param(".env.example", False, id="env-example"),
    pytest.param(".env.template", False, id="env-template"),
    pytest.param("keys/server.pem", True, id="pem"),
    pytest.param("id_rsa", True, id="id_rsa"),
    pytest.param("home/.ssh/config", True, id="ssh-dir"),
    pytest.param(".aws/credentials", True, id="aws-dir"),
    pytest.param(".kube/config", True, id="kube"),
    pytest.param("deploy/.docker/config.json", True, id="docker"),
    pytest.param("infra/prod.tfstate.backup", True, id="tfstate"),
    pytest.param("gcp/service-account-prod.json", True, id="service-account"),
    pytest.param("credentials.json", True, id="credentials"),
    pytest.param(".git/config", True, id="git-dir"),
    pytest.param("src/app.py", False, id="code"),
    pytest.param("docs/keys.md", False, id="keys-doc"),
])
def test_never_send_list(path: str, blocked: bool) -> None:
    assert (never_send_reason(path) is not None) is blocked


def test_secret_files_never_sent_and_key_in_source_redacted(repo: Path) -> None:
    (repo / ".env").write_text(f"DB_PASSWORD={ENV_SECRET}\n")
    (repo / "id_rsa").write_text(f"-----BEGIN RSA PRIVATE KEY-----\n{RSA_BODY}\n-----END RSA PRIVATE KEY-----\n")
    (repo / "server.pem").write_text(f"-----BEGIN CERTIFICATE-----\n{PEM_BODY}\n-----END CERTIFICATE-----\n")
    (repo / "app.py").write_text(f"def greet():\n    return 'hi'\n\nAWS_ID = '{AWS_KEY}'\n")
    change_set = collect_change_set(open_repo(repo))
    prompt = build_prompt("Fix the greeting", change_set, repo, spec())
    text = sent_text(prompt)
    for forbidden in (ENV_SECRET, RSA_BODY, PEM_BODY, AWS_KEY):
        assert forbidden not in text
    assert "[REDACTED:AWS access key id]" in text
    assert any(r.path == "app.py" and r.line == 4 and r.rule == "AWS access key id" for r in prompt.redactions)
    reasons = {w.path: w.reason for w in prompt.withheld}
    assert reasons[".env"].startswith("never sent") and reasons["id_rsa"].startswith("never sent")
    assert reasons["server.pem"].startswith("never sent")
    assert "def greet():" in text


def test_private_key_block_inside_source_is_redacted_whole(repo: Path) -> None:
    (repo / "fixtures.py").write_text(
        f'KEY = """\n-----BEGIN OPENSSH PRIVATE KEY-----\n{RSA_BODY}\n{RSA_BODY[::-1]}\n-----END OPENSSH PRIVATE KEY-----\n"""\n')
    prompt = build_prompt("tidy fixtures.py", collect_change_set(open_repo(repo)), repo, spec())
    text = sent_text(prompt)
    assert RSA_BODY not in text and RSA_BODY[::-1] not in text
    assert any(r.path == "fixtures.py" and r.line == 2 and r.rule == "private key" for r in prompt.redactions)


def test_secret_in_brief_is_redacted(repo: Path) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    prompt = build_prompt(f"the deploy uses {token}, rotate it", collect_change_set(open_repo(repo)), repo, spec())
    assert token not in sent_text(prompt)
    assert any(r.path == "<brief>" and r.line == 1 for r in prompt.redactions)


def test_ignored_binary_symlink_and_long_lines_withheld(repo: Path) -> None:
    (repo / "build").mkdir()
    (repo / "build" / "out.py").write_text("generated = True\n")
    (repo / "blob.py").write_bytes(b"\x00\x01binary")
    secret_target = repo.parent / "outside-secret.txt"
    secret_target.write_text("outside content stays home\n")
    (repo / "link.py").symlink_to(secret_target)
    long_line = "x = '" + "a" * 5000 + "'"
    (repo / "long.py").write_text(f"short = 1\n{long_line}\n")
    prompt = build_prompt("look at build/out.py and link.py", collect_change_set(open_repo(repo)), repo, spec())
    text = sent_text(prompt)
    assert "generated = True" not in text
    assert "outside content stays home" not in text
    assert "a" * 5000 not in text and "short = 1" in text
    withheld = {(w.path, w.line): w.reason for w in prompt.withheld}
    assert withheld[("build/out.py", None)] == "ignored by git"
    assert withheld[("blob.py", None)] == "binary"
    assert withheld[("link.py", None)].startswith("symlink")
    assert withheld[("long.py", 2)] == "line over 4 KB"


def test_trimmed_to_context_budget(repo: Path) -> None:
    for i in range(6):
        (repo / f"mod{i}.py").write_text("".join(f"value_{n} = {n}\n" for n in range(400)))
    s = spec(max_context_tokens=4096, max_output_tokens=1024)
    prompt = build_prompt("refactor", collect_change_set(open_repo(repo)), repo, s)
    assert prompt.estimated_tokens <= 4096 - 1024
    assert any("context budget" in w.reason for w in prompt.withheld)
    assert sum(len(m["content"]) for m in prompt.messages) <= (4096 - 1024) * 4


def test_brief_named_file_included_and_system_asks_for_diff(repo: Path) -> None:
    prompt = build_prompt("Make greet in app.py say hello", collect_change_set(open_repo(repo)), repo, spec(),
                          findings=["tests/test_app.py:3: assert 'hello' == 'hi'"])
    system, user = prompt.messages[0]["content"], prompt.messages[1]["content"]
    assert "```diff" in system and "SEARCH" in system
    assert "### app.py" in user and "return 'hi'" in user
    assert "Problems found in the previous attempt" in user
    assert prompt.left_out == []


def test_hidden_characters_stripped_from_brief(repo: Path) -> None:
    prompt = build_prompt("fix\u200b the\u202e bug", collect_change_set(open_repo(repo)), repo, spec())
    user = prompt.messages[1]["content"]
    assert "\u200b" not in user and "\u202e" not in user
