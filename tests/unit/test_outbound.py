"""The never-send and secret gate every request body passes (lanes/outbound.py), alone and in LaneClient."""

from __future__ import annotations

from typing import Any

import pytest

from fakeserver.server import FakeLLMServer
from route_agent.lanes import LaneClient
from route_agent.lanes.outbound import guard_request, guard_text
from route_agent.policy.models import Models, ModelSpec, Policy

AWS = "AKIA" + "OUTBOUNDTEST1234"
GH = "ghp_" + "0123456789abcdefghijklmnopqrstuvwxyz"
KEY_BLOCK = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabcdef\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(("text", "gone", "kept"), [
    pytest.param(f'x = "{AWS}"', [AWS], ["x = ", "[REDACTED:AWS access key id]"], id="aws-key"),
    pytest.param(f"one {GH} two {AWS}", [GH, AWS], ["one", "two"], id="two-rules-on-one-line"),
    pytest.param(f"before\n{KEY_BLOCK}\nafter", ["MIIEpAIBAAKCAQEA7", "abcdef"], ["before", "after"], id="private-key-block"),
    pytest.param("diff --git a/.env b/.env\n--- a/.env\n+++ b/.env\n@@ -1 +1 @@\n-A=1\n+DB=hunter2-plain\n"
                 "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x\n+y\n",
                 ["hunter2-plain", "A=1"], ["[withheld: .env: never sent: .env file]", "+++ b/app.py", "+y"], id="env-diff-section"),
    pytest.param("--- a/keys/server.pem\n+++ b/keys/server.pem\n@@ -1 +1 @@\n-old-pem-body\n\n+new-pem-body\n```\nafter the fence",
                 ["old-pem-body", "new-pem-body"], ["keys/server.pem", "after the fence"], id="bare-diff-of-a-key-file"),
    pytest.param("- [error] rescore deploy/.env:1: password handling 'DB_PASSWORD=plain'\n- app/x.py:3: fine",
                 ["DB_PASSWORD=plain"], ["deploy/.env", "app/x.py:3: fine"], id="finding-quoting-a-never-send-file"),
    pytest.param("short\n" + "y" * 5000 + GH[:10], ["y" * 5000], ["short", "[line withheld: over 4 KB]"], id="long-line"),
])
def test_guard_text(text: str, gone: list[str], kept: list[str]) -> None:
    notes: list[tuple[int, str]] = []
    out = guard_text(text, lambda line, rule: notes.append((line, rule)))
    for secret in gone:
        assert secret not in out
    for part in kept:
        assert part in out
    assert notes


def test_clean_text_is_sent_unchanged() -> None:
    text = "def f():\r\n    return 1\n\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x\n+y\n"
    assert guard_text(text) is text


def test_every_string_of_the_body_is_guarded_whatever_its_shape() -> None:
    body: dict[str, Any] = {"model": "m", "messages": [
        {"role": "user", "content": [{"type": "text", "text": f"see {AWS}"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": f'{{"cmd": "echo {GH}"}}'}}]},
    ], "stream": True}
    guarded = guard_request(body)
    assert AWS not in str(guarded.body) and GH not in str(guarded.body)
    assert {n.message for n in guarded.notes} == {0, 1}
    assert guarded.body["stream"] is True and guarded.body["model"] == "m"


async def test_a_request_type_that_skipped_prompt_assembly_is_still_redacted(fake_llm: FakeLLMServer) -> None:
    spec = ModelSpec(provider="openai-compatible", model="any", base_url=fake_llm.base_url, api_key_env="FAKE_LLM_KEY")
    messages = [{"role": "user", "content": f"a new kind of request\n{KEY_BLOCK}\ntoken {GH}"}]
    async with LaneClient(Policy(models=Models(fast=spec, strong=spec, verifier=spec)), environ={"FAKE_LLM_KEY": "k" * 20}) as client:
        reply = await client.complete("verifier", messages)
    body = fake_llm.requests[0].body
    assert GH not in body and "MIIEpAIBAAKCAQEA7" not in body and "[REDACTED:GitHub token]" in body
    assert any("GitHub token" in note for note in reply.redacted), reply.redacted
