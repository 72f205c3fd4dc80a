"""LaneClient against the real scripted model server on 127.0.0.1 (tests/fakeserver)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fakeserver.server import GOOD_PATCH, FakeLLMServer
from route_agent.lanes import InMemorySpend, LaneClient, LaneError, TaskSpend
from route_agent.policy.models import Budgets, Models, ModelSpec, Policy

KEY = "sk-fake-0123456789abcdefABCDEF"
ENV = {"FAKE_LLM_KEY": KEY}
MESSAGES = [{"role": "user", "content": "Fix the greeting in hello.txt"}]

pytestmark = pytest.mark.timeout(60)


def spec(server: FakeLLMServer, model: str, **overrides: Any) -> ModelSpec:
    fields: dict[str, Any] = {
        "provider": "openai-compatible", "model": model, "base_url": server.base_url, "api_key_env": "FAKE_LLM_KEY",
        "price_per_mtok": {"input": 3.0, "output": 15.0}, "idle_timeout_s": 0.5, "timeout_s": 20,
    }
    fields.update(overrides)
    return ModelSpec(**fields)


def policy(server: FakeLLMServer, model: str, budgets: Budgets | None = None, **overrides: Any) -> Policy:
    lane = spec(server, model, **overrides)
    return Policy(models=Models(fast=lane, strong=lane), budgets=budgets or Budgets())


async def call(server: FakeLLMServer, model: str, **overrides: Any) -> Any:
    async with LaneClient(policy(server, model, **overrides), environ=ENV) as client:
        return await client.complete("fast", MESSAGES)


async def test_reports_model_tokens_cost_latency(fake_llm: FakeLLMServer) -> None:
    deltas: list[str] = []
    async with LaneClient(policy(fake_llm, "good-patch"), environ=ENV) as client:
        reply = await client.complete("fast", MESSAGES, on_delta=deltas.append)
    assert reply.text == GOOD_PATCH
    assert "".join(deltas) == GOOD_PATCH
    assert (reply.model, reply.provider, reply.finish_reason) == ("good-patch", "openai-compatible", "stop")
    assert reply.input_tokens > 0 and reply.output_tokens == len(GOOD_PATCH) // 4
    assert reply.cost_usd == pytest.approx((reply.input_tokens * 3 + reply.output_tokens * 15) / 1e6, abs=1e-6)
    assert reply.cost_source == "policy" and reply.usage_reported
    assert 0 < reply.latency_seconds < 10
    assert (reply.retries, reply.fallback_used) == (0, False)
    sent = fake_llm.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["stream"] is True and sent.json["stream_options"] == {"include_usage": True}


async def test_rate_limit_retry_after_one_second_waits_then_succeeds(fake_llm: FakeLLMServer) -> None:
    started = time.monotonic()
    reply = await call(fake_llm, "rate-limit-then-ok")
    assert reply.retries == 1
    assert time.monotonic() - started >= 0.95  # honoured Retry-After: 1
    assert len(fake_llm.requests) == 2


@pytest.mark.parametrize(("model", "kind", "words"), [
    pytest.param("rate-limit-long", "rate_limited", "86400 s", id="retry-after-86400"),
    pytest.param("auth-fail", "auth", "FAKE_LLM_KEY", id="401"),
    pytest.param("html-200", "html", "HTML", id="html-200"),
])
async def test_no_retry_and_clear_message(fake_llm: FakeLLMServer, model: str, kind: str, words: str) -> None:
    with pytest.raises(LaneError) as caught:
        await call(fake_llm, model)
    assert caught.value.kind == kind
    assert words in caught.value.message
    assert len(fake_llm.requests) == 1  # no retry, and no wait for an 86400 s Retry-After
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)


@pytest.mark.parametrize("status", [400, 402, 403])
async def test_never_retries_client_errors(fake_llm: FakeLLMServer, status: int) -> None:
    fake_llm.script("m", status=status)
    with pytest.raises(LaneError) as caught:
        await call(fake_llm, "m")
    assert caught.value.status == status
    assert len(fake_llm.requests) == 1


async def test_server_errors_are_retried_twice(fake_llm: FakeLLMServer) -> None:
    with pytest.raises(LaneError) as caught:
        await call(fake_llm, "server-error")
    assert caught.value.kind == "server" and caught.value.status == 500
    assert len(fake_llm.requests) == 3


async def test_529_then_ok(fake_llm: FakeLLMServer) -> None:
    fake_llm.script("m", status=529, times=1, reply="fine")
    reply = await call(fake_llm, "m")
    assert reply.text == "fine" and reply.retries == 1


@pytest.mark.parametrize(("model", "requests", "words"), [
    pytest.param("cut-midway", 1, "cut", id="cut-midway-content-started-no-retry"),
    pytest.param("no-done", 1, "[DONE]", id="no-done"),
    pytest.param("error-event", 1, "error event", id="error-event"),
    pytest.param("length", 1, "length", id="length"),
    pytest.param("keepalive-only", 2, "keep-alive", id="keepalive-only-one-retry"),
])
async def test_incomplete_streams_fail(fake_llm: FakeLLMServer, model: str, requests: int, words: str) -> None:
    with pytest.raises(LaneError) as caught:
        await call(fake_llm, model)
    assert caught.value.kind == "incomplete"
    assert words in caught.value.message
    assert len(fake_llm.requests) == requests


async def test_incomplete_before_content_is_retried_once_then_ok(fake_llm: FakeLLMServer) -> None:
    fake_llm.script("m", mode="error-event", reply="", chunks=1, times=1, then={"reply": "recovered"})
    reply = await call(fake_llm, "m")
    assert reply.text == "recovered" and reply.retries == 1


async def test_total_deadline(fake_llm: FakeLLMServer) -> None:
    fake_llm.script("m", delay=3.0)
    with pytest.raises(LaneError) as caught:
        await call(fake_llm, "m", timeout_s=0.6, idle_timeout_s=5)
    # The reply would arrive after 3 s, within the idle timeout: only the 0.6 s total deadline ends the call.
    assert caught.value.kind == "timeout"


async def test_fallback_only_after_failure_and_marked(fake_llm: FakeLLMServer) -> None:
    lane = spec(fake_llm, "auth-fail", fallback=spec(fake_llm, "good-patch", tier="strong"))
    async with LaneClient(Policy(models=Models(fast=lane, strong=spec(fake_llm, "x"))), environ=ENV) as client:
        reply = await client.complete("fast", MESSAGES)
    assert reply.model == "good-patch" and reply.fallback_used
    assert reply.errors and "auth-fail: auth" in reply.errors[0]


async def test_weaker_fallback_is_a_config_error(fake_llm: FakeLLMServer) -> None:
    strong = spec(fake_llm, "good-patch", tier="strong")
    verifier = spec(fake_llm, "v", tier="strong", fallback=spec(fake_llm, "weak", tier="fast"))
    p = Policy(models=Models(fast=spec(fake_llm, "x"), strong=strong, verifier=verifier))
    async with LaneClient(p, environ=ENV) as client:
        with pytest.raises(LaneError) as caught:
            await client.complete("verifier", MESSAGES)
    assert caught.value.kind == "config" and "weaker" in caught.value.message
    assert fake_llm.requests == []


async def test_missing_key_and_base_url_are_config_errors(fake_llm: FakeLLMServer) -> None:
    async with LaneClient(policy(fake_llm, "good-patch"), environ={}) as client:
        with pytest.raises(LaneError, match="FAKE_LLM_KEY is not set") as caught:
            await client.complete("fast", MESSAGES)
    assert caught.value.kind == "config"
    async with LaneClient(policy(fake_llm, "good-patch", base_url=None), environ=ENV) as client:
        with pytest.raises(LaneError, match="needs base_url"):
            await client.complete("fast", MESSAGES)
    assert fake_llm.requests == []


async def test_cancellation_closes_the_stream(fake_llm: FakeLLMServer) -> None:
    first = asyncio.Event()
    async with LaneClient(policy(fake_llm, "hang", idle_timeout_s=30), environ=ENV) as client:
        task = asyncio.create_task(client.complete("fast", MESSAGES, on_delta=lambda _: first.set()))
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        cancelled_at = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
    deadline = time.monotonic() + 3
    while not fake_llm.disconnects and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert fake_llm.disconnects, "the server never saw the client go away"
    assert fake_llm.disconnects[0][1] - cancelled_at < 1.0


async def test_per_task_budget_stops_before_call(fake_llm: FakeLLMServer) -> None:
    p = policy(fake_llm, "good-patch", budgets=Budgets(per_task_usd=0.01, per_day_usd=None))
    async with LaneClient(p, environ=ENV, task=TaskSpend(spent_usd=0.01)) as client:
        with pytest.raises(LaneError, match="per-task budget") as caught:
            await client.complete("fast", MESSAGES)
    assert caught.value.kind == "budget"
    assert fake_llm.requests == []


async def test_per_day_budget_from_spend_source(fake_llm: FakeLLMServer) -> None:
    p = policy(fake_llm, "good-patch", budgets=Budgets(per_task_usd=None, per_day_usd=1.0))
    async with LaneClient(p, environ=ENV, spend_source=InMemorySpend(0.99999)) as client:
        with pytest.raises(LaneError, match="per-day budget") as caught:
            await client.complete("fast", MESSAGES, max_tokens=4000)
    assert caught.value.kind == "budget"
    assert fake_llm.requests == []


async def test_actual_cost_counts_and_next_call_stops(fake_llm: FakeLLMServer) -> None:
    p = policy(fake_llm, "good-patch", budgets=Budgets(per_task_usd=0.0005, per_day_usd=None),
               price_per_mtok={"input": 0.0, "output": 10.0})
    fake_llm.script("good-patch", reply=GOOD_PATCH, usage={"completion_tokens": 100})
    task = TaskSpend()
    async with LaneClient(p, environ=ENV) as client:
        reply = await client.complete("fast", MESSAGES, max_tokens=64, task=task)
        assert reply.cost_usd == pytest.approx(0.001) and not reply.within_budget
        assert task.spent_usd == pytest.approx(reply.cost_usd)
        with pytest.raises(LaneError) as caught:
            await client.complete("fast", MESSAGES, max_tokens=64, task=task)
    assert caught.value.kind == "budget"
    assert len(fake_llm.requests) == 1


async def test_openrouter_asks_for_cost_and_uses_it(fake_llm: FakeLLMServer) -> None:
    p = policy(fake_llm, "good-patch", provider="openrouter", api_key_env=None)
    async with LaneClient(p, environ={"OPENROUTER_API_KEY": KEY}) as client:
        reply = await client.complete("fast", MESSAGES)
    assert fake_llm.requests[0].json["usage"] == {"include": True}
    assert reply.cost_source == "provider" and reply.cost_usd == pytest.approx(0.0001234)


async def test_non_streaming_json_reply_is_accepted(fake_llm: FakeLLMServer) -> None:
    fake_llm.script("m", reply="plain", mode="json")
    reply = await call(fake_llm, "m")
    assert reply.text == "plain"


async def test_concurrent_calls_share_the_pool(fake_llm: FakeLLMServer) -> None:
    async with LaneClient(policy(fake_llm, "anything"), environ=ENV) as client:
        replies = await asyncio.gather(*(client.complete("fast", MESSAGES) for _ in range(20)))
    assert {r.text for r in replies} == {"Hello from the fake model."}


# -- the whole lane path: prompt -> HTTP -> patch in a worktree ----------------------------------

def _git(root: Any, *args: str) -> None:
    import os
    import subprocess

    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.fixture
def user_repo(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ROUTE_AGENT_STATE_DIR", str(tmp_path / "state"))
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "hello.txt").write_text("hello\n")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "base")
    return root


async def test_secrets_in_change_set_never_in_any_request_body(fake_llm: FakeLLMServer, user_repo: Any) -> None:
    from route_agent.lanes import build_prompt
    from route_agent.workspace.git import collect_change_set, open_repo

    env_secret, key_body, pem_body, aws = "S3cretDbPassw0rdValue", "b3BlbnNzaC1rZXktdjEAAAAA", "MIIBpemBODYvalue", "AKIAIOSFODNN7EXAMPLE"
    (user_repo / ".env").write_text(f"DB_PASSWORD={env_secret}\n")
    (user_repo / "id_rsa").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key_body}\n-----END OPENSSH PRIVATE KEY-----\n")
    (user_repo / "tls.pem").write_text(f"-----BEGIN CERTIFICATE-----\n{pem_body}\n-----END CERTIFICATE-----\n")
    (user_repo / "app.py").write_text(f"REGION = 'eu'\nAWS_ACCESS_KEY_ID = '{aws}'\n")
    change_set = collect_change_set(open_repo(user_repo))
    lane = spec(fake_llm, "good-patch")
    prompt = build_prompt("fix hello.txt; see .env and id_rsa", change_set, user_repo, lane)
    async with LaneClient(Policy(models=Models(fast=lane, strong=lane)), environ=ENV) as client:
        await client.complete("fast", prompt.messages)
    bodies = fake_llm.bodies()
    assert len(bodies) == 1
    for secret in (env_secret, key_body, pem_body, aws):
        assert all(secret not in body for body in bodies)
    assert "[REDACTED:AWS access key id]" in bodies[0]
    assert [(r.path, r.line) for r in prompt.redactions] == [("app.py", 2)]


async def test_truncated_stream_applies_nothing(fake_llm: FakeLLMServer, user_repo: Any) -> None:
    from route_agent.workspace.git import open_repo
    from route_agent.workspace.worktree import apply_patch_in_worktree, create_worktree, remove_worktree

    repo = open_repo(user_repo)
    worktree = create_worktree(repo)
    applied: list[str] = []
    try:
        for model in ("cut-midway", "no-done"):
            try:
                reply = await call(fake_llm, model)
            except LaneError:
                continue
            applied.append(apply_patch_in_worktree(worktree, reply.text))
        assert applied == []
        assert (worktree.path / "hello.txt").read_text() == "hello\n"
        assert (user_repo / "hello.txt").read_text() == "hello\n"
        good = await call(fake_llm, "good-patch")
        assert "+hello, world" in apply_patch_in_worktree(worktree, good.text)
        assert (user_repo / "hello.txt").read_text() == "hello\n"
    finally:
        remove_worktree(repo, worktree)


@pytest.mark.parametrize(("delta_bytes", "what"), [
    pytest.param(64 * 1024, "content passed 4 MiB", id="many-deltas"),
    pytest.param(24 << 20, "stream passed 16 MiB", id="one-endless-line"),
])
async def test_a_huge_reply_stops_at_the_cap_and_is_booked_estimated(fake_llm: FakeLLMServer, delta_bytes: int, what: str) -> None:
    fake_llm.script("huge", mode="endless", total=64 << 20, delta_bytes=delta_bytes)
    task = TaskSpend()
    async with LaneClient(policy(fake_llm, "huge", idle_timeout_s=20), environ=ENV) as client:
        with pytest.raises(LaneError) as caught:
            await client.complete("fast", MESSAGES, task=task)
    error = caught.value
    assert error.kind == "too_large" and what in error.message and "stopped reading" in error.message
    assert error.cost_estimated and error.output_tokens == 4096 and error.cost_usd > 0
    assert task.spent_usd == pytest.approx(error.cost_usd), "the paid call was not counted against the task budget"
    assert len(fake_llm.requests) == 1, "a refused reply was retried"
