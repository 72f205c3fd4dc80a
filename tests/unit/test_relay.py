"""The relay between an external agent and its model (lanes/relay.py), against the scripted model server
on 127.0.0.1: the agent's token is swapped for the lane's key, requests pass the outbound gate,
answers stream back unchanged and are metered, and a spent budget refuses the call."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from route_agent.lanes.budget import BudgetGuard, TaskSpend
from route_agent.lanes.relay import ModelRelay, RelayCall
from route_agent.policy.models import Budgets, ModelSpec

LANE_KEY = "lane-key-relay-0123456789abcdef"
AWS = "AKIA" + "RELAYTESTKEY1234"


def spec(base_url: str) -> ModelSpec:
    return ModelSpec(provider="openai-compatible", model="agent-model", base_url=base_url, api_key_env="LANE_KEY",
                     price_per_mtok={"input": 2.0, "output": 8.0})  # type: ignore[arg-type]


@pytest.fixture
def relay(fake_llm) -> Iterator[ModelRelay]:  # type: ignore[no-untyped-def]
    seen: list[RelayCall] = []
    with ModelRelay(fake_llm.base_url, LANE_KEY, spec(fake_llm.base_url), on_call=seen.append) as r:
        r.seen = seen  # type: ignore[attr-defined]
        yield r


def ask(relay: ModelRelay, token: str | None, *, stream: bool, content: str = "fix add()", header: str = "authorization") -> httpx.Response:
    headers = {}
    if token is not None:
        headers = {header: token if header == "x-api-key" else f"Bearer {token}"}
    body = {"model": "agent-model", "messages": [{"role": "user", "content": content}], "stream": stream}
    return httpx.post(relay.base_url + "/chat/completions", json=body, headers=headers, timeout=30)


def test_the_token_is_swapped_for_the_key_and_a_stream_is_relayed_and_metered(relay: ModelRelay, fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.script("agent-model", reply="Here is the fix: return a + b")
    answer = ask(relay, relay.token, stream=True)
    assert answer.status_code == 200
    assert "Here is the fix" in "".join(json.loads(line[5:])["choices"][0]["delta"].get("content", "")
                                        for line in answer.text.splitlines()
                                        if line.startswith("data: {") and json.loads(line[5:])["choices"])
    (request,) = fake_llm.requests
    assert request.headers["authorization"] == f"Bearer {LANE_KEY}", "the relay puts the lane's key on the request"
    assert relay.token not in json.dumps(request.headers)
    (call,) = relay.model_calls
    assert (call.status, call.estimated) == (200, False), "the stream's usage event was asked for and read"
    assert call.input_tokens > 0 and call.output_tokens == len("Here is the fix: return a + b") // 4
    assert call.cost_usd == pytest.approx((call.input_tokens * 2.0 + call.output_tokens * 8.0) / 1e6)
    assert relay.seen == [call] and relay.cost_usd == call.cost_usd  # type: ignore[attr-defined]


def test_a_json_answer_and_an_x_api_key_client_are_metered_too(relay: ModelRelay, fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.script("agent-model", reply="done")
    answer = ask(relay, relay.token, stream=False, header="x-api-key")
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "done"
    assert fake_llm.requests[0].headers["x-api-key"] == LANE_KEY
    (call,) = relay.model_calls
    assert call.input_tokens == answer.json()["usage"]["prompt_tokens"] and not call.estimated


def test_without_the_token_nothing_reaches_the_model(relay: ModelRelay, fake_llm) -> None:  # type: ignore[no-untyped-def]
    for token in (None, "guess", LANE_KEY[:-1]):
        answer = ask(relay, token, stream=False)
        assert answer.status_code == 401 and "token" in answer.json()["error"]["message"]
    assert fake_llm.requests == [] and relay.model_calls == []
    assert httpx.get(relay.base_url.removesuffix("/v1") + "/admin", timeout=10).status_code == 404


def test_every_request_passes_the_outbound_gate(relay: ModelRelay, fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.script("agent-model", reply="ok")
    dotenv = "diff --git a/.env b/.env\n--- a/.env\n+++ b/.env\n@@ -0,0 +1 @@\n+DB_PASSWORD=hunter2hunter2\n"
    answer = ask(relay, relay.token, stream=False, content=f"the config has aws_key = {AWS}\n{dotenv}")
    assert answer.status_code == 200
    sent = fake_llm.requests[0].body
    assert AWS not in sent and "hunter2hunter2" not in sent and "[REDACTED:" in sent
    assert relay.redactions >= 2


def test_a_spent_budget_refuses_the_call_with_a_message(fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.script("agent-model", reply="ok")
    guard, task = BudgetGuard(Budgets(per_task_usd=0.01)), TaskSpend(spent_usd=0.0)
    with ModelRelay(fake_llm.base_url, LANE_KEY, spec(fake_llm.base_url), guard=guard, task=task) as relay:
        assert ask(relay, relay.token, stream=False).status_code == 200
        assert task.calls == 1 and task.spent_usd == pytest.approx(relay.cost_usd) and task.spent_usd > 0, \
            "the allowed call was booked on the task"
        task.spent_usd = 0.02  # the run's earlier calls used the task's budget up
        refused = ask(relay, relay.token, stream=False)
    assert refused.status_code == 402 and "per-task budget of $0.01 is spent" in refused.json()["error"]["message"]
    assert len(fake_llm.requests) == 1, "the refused call never reached the model"
    assert [c.refused is not None for c in relay.calls] == [False, True]


def test_a_model_server_that_cannot_be_reached_is_a_clear_502() -> None:
    with ModelRelay("http://127.0.0.1:9/v1", LANE_KEY, spec("http://127.0.0.1:9/v1")) as relay:
        answer = ask(relay, relay.token, stream=False)
    assert answer.status_code == 502 and "could not be reached" in answer.json()["error"]["message"]
    assert relay.model_calls == []


def test_a_base_url_that_is_not_http_is_refused() -> None:
    from route_agent.lanes.errors import LaneError

    with pytest.raises(LaneError, match="must start with http"):
        ModelRelay("file:///etc", LANE_KEY, spec("file:///etc"))
