"""Model calls over OpenAI-compatible HTTP: streamed, timed, retried, budgeted, with fallback.

    client = LaneClient(policy, environ=None, transport=None, *, spend_source=None, task=None)
    reply = await client.complete(role, messages, *, on_delta=None, max_tokens=None, task=None)
    await client.aclose()            # or `async with LaneClient(...) as client:`

`role` is "fast", "strong" or "verifier"; `messages` are chat messages (`{"role", "content"}`).
`LaneReply` carries text, model, provider, input_tokens, output_tokens, cost_usd, latency_seconds,
finish_reason, retries and fallback_used. Every failure is a `LaneError(kind, message, status)`.

Providers: openrouter (https://openrouter.ai/api/v1, OPENROUTER_API_KEY, asks for usage and cost),
openai (https://api.openai.com/v1, OPENAI_API_KEY), ollama (http://127.0.0.1:11434/v1, no key) and
openai-compatible (its `base_url` is required; a key only when `api_key_env` is set). One pooled
`httpx.AsyncClient` serves every lane.

Rules (safety.md, "Talking to model APIs"):
- Timeouts: connect; idle, the time between two *data* events (SSE comments such as keep-alives do
  not count, so a keep-alive-only stream fails after `idle_timeout_s`); and a total deadline of
  `timeout_s` per model, retries and waits included.
- Retries (stamina; up to 2, backoff 0.5 s to 8 s with jitter) on connection errors, timeouts, 408,
  409, 429, 5xx and 529, honouring `Retry-After`; a `Retry-After` longer than 60 s or than the time
  left fails at once and names the wait. Never on 400/401/402/403, never once content has arrived.
- A stream is complete only with a finish_reason of "stop" *and* `data: [DONE]`. A clean close
  without `[DONE]`, an error event inside a 200, finish_reason "length", a keep-alive-only stream,
  or HTML with status 200 fail (`incomplete` or `html`); an incomplete stream that produced no
  content is retried once. Then the model's `fallback` is tried, only of the same or a stronger tier.
- Budgets (budget.py) are checked before each request (estimate) and after it (actual); a spent
  budget raises `LaneError(kind="budget")` and nothing falls back to a cheaper model.
- Size: reading stops once a reply's content passes MAX_REPLY_CHARS or its raw stream passes
  MAX_STREAM_CHARS (`too_large`, no retry, no fallback; memory stays bounded whatever the server
  sends). Such a call is booked at what was received, as is a reply without `usage`: 4 characters
  a token, output at most the `max_tokens` asked for (a provider bills no more), marked estimated.
- Cancelling the awaiting task closes the HTTP stream at once (the connection is dropped).
- API keys are read from the environment at request time and never appear in logs, errors or reprs.
- Every request body is built by `_request_body`, which passes it through the never-send and secret
  gate (outbound.py): no caller, present or future, can send text that skipped those rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import httpx
import stamina
from httpx_sse import EventSource

from route_agent.lanes.budget import BudgetGuard, SpendSource, TaskSpend
from route_agent.lanes.errors import LaneError, LaneErrorKind
from route_agent.lanes.estimate import CHARS_PER_TOKEN, cost_usd, estimate_tokens
from route_agent.lanes.outbound import Guarded, guard_request
from route_agent.lanes.tls import shared_tls_context
from route_agent.policy.keys import api_key_env_for
from route_agent.policy.models import ModelSpec, Policy

Role = Literal["fast", "strong", "verifier"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URLS = {
    "openrouter": "https://openrouter.ai/api/v1",
    "openai": "https://api.openai.com/v1",
    "ollama": "http://127.0.0.1:11434/v1",
}
RETRY_STATUSES = frozenset({408, 409, 429, 529, *range(500, 600)})
MAX_ATTEMPTS = 3
"""One request and two retries, as the official SDKs do."""
MAX_RETRY_AFTER_S = 60.0
INCOMPLETE_RETRIES = 1
COMPLETE_FINISH_REASONS = frozenset({"stop", "end_turn", "stop_sequence", "eos"})
MAX_ERROR_BODY = 4096
MAX_REPLY_CHARS = 4 * 1024 * 1024
"""The cap on a reply's content, the size of the largest patch route-agent applies (MAX_PATCH_BYTES):
reading stops there, so a reply of any size costs bounded memory."""
MAX_STREAM_CHARS = 16 * 1024 * 1024
STREAM_CHARS_PER_TOKEN = 512
"""The cap on a stream's raw text, event framing included: MAX_STREAM_CHARS, or 512 characters per
output token asked for when that is more (a provider sends a few hundred per token at worst)."""
MAX_JSON_BODY = 16 * 1024 * 1024
TIER_ORDER = {"fast": 0, "strong": 1}


@dataclass(frozen=True, slots=True)
class LaneReply:
    text: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_seconds: float
    finish_reason: str
    retries: int = 0
    fallback_used: bool = False
    usage_reported: bool = True
    """False when the server sent no `usage`: tokens are then estimated at 4 characters a token."""
    cost_source: Literal["provider", "policy", "unpriced"] = "policy"
    within_budget: bool = True
    """False when this call used up a budget: the next call will stop with kind "budget"."""
    errors: tuple[str, ...] = ()
    """Messages of the failures that led to a fallback, oldest first."""
    redacted: tuple[str, ...] = ()
    """What the never-send and secret gate changed in the request (outbound.py), e.g.
    "message 2 line 14: AWS access key id"; empty when the caller had already left it all out."""

    @property
    def cost_estimated(self) -> bool:
        """True when the cost is not the provider's figure and the tokens are estimated (no `usage`)."""
        return self.cost_source != "provider" and not self.usage_reported


@dataclass
class _AttemptState:
    incomplete_retries: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


class LaneClient:
    def __init__(self, policy: Policy, environ: Mapping[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, *,
                 spend_source: SpendSource | None = None, task: TaskSpend | None = None) -> None:
        self.policy = policy
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._http = httpx.AsyncClient(
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50, keepalive_expiry=30.0),
            follow_redirects=False,
            headers={"User-Agent": "route-agent"},
            verify=shared_tls_context(),
        )
        self.guard = BudgetGuard(policy.budgets, spend_source)
        self.task = task if task is not None else TaskSpend()

    def __repr__(self) -> str:
        return f"LaneClient(fast={self.policy.models.fast.model!r}, strong={self.policy.models.strong.model!r})"

    async def __aenter__(self) -> LaneClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- public --------------------------------------------------------------------------------
    async def complete(self, role: Role, messages: list[dict[str, str]], *,
                       on_delta: Callable[[str], None] | None = None, max_tokens: int | None = None,
                       task: TaskSpend | None = None) -> LaneReply:
        """Call the role's model (then its fallbacks) and return a complete reply, or raise LaneError."""
        chain = self.model_chain(role)
        spent = task if task is not None else self.task
        errors: list[str] = []
        for index, spec in enumerate(chain):
            try:
                reply = await self._call_model(spec, messages, on_delta, max_tokens, spent)
            except LaneError as exc:
                exc.model = spec.model
                last = index == len(chain) - 1
                if last or exc.kind in ("budget", "config", "cancelled", "too_large"):
                    if errors:
                        exc.message = f"{exc.message} (after {len(errors)} failed model(s): {'; '.join(errors)})"
                        exc.args = (exc.message,)
                    raise
                errors.append(f"{spec.model}: {exc.kind}: {exc.message}")
                log.warning("lane %s: %s failed (%s), trying fallback %s", role, spec.model, exc.kind, chain[index + 1].model)
                continue
            if index:
                return _replace(reply, fallback_used=True, errors=tuple(errors))
            return reply
        raise AssertionError("unreachable: the model chain is never empty")

    def model_chain(self, role: Role) -> list[ModelSpec]:
        """The role's model followed by its fallbacks; a weaker-tier fallback is a config error."""
        spec: ModelSpec | None = getattr(self.policy.models, role)
        if spec is None:
            raise LaneError("config", f"the policy has no models.{role}; add one to use the {role} lane")
        lane_tier = spec.tier or ("strong" if role == "strong" else "fast")
        chain = [spec]
        fallback = spec.fallback
        while fallback is not None:
            tier = fallback.tier or lane_tier
            if TIER_ORDER[tier] < TIER_ORDER[lane_tier]:
                raise LaneError("config", f"models.{role}.fallback {fallback.model!r} is of tier {tier}, weaker than the "
                                f"{lane_tier} lane; a fallback must be of the same or a stronger tier")
            if len(chain) >= 5:
                raise LaneError("config", f"models.{role} has more than 4 fallbacks")
            chain.append(fallback)
            fallback = fallback.fallback
        return chain

    # -- one model, with retries -----------------------------------------------------------------
    async def _call_model(self, spec: ModelSpec, messages: list[dict[str, str]],
                          on_delta: Callable[[str], None] | None, max_tokens: int | None, task: TaskSpend) -> LaneReply:
        url = chat_completions_url(spec)
        key_env = api_key_env_for(spec)
        key: str | None = None
        if key_env is not None:
            key = self._environ.get(key_env, "").strip() or None
            if key is None:
                raise LaneError("config", f"{key_env} is not set; set it to call {spec.model} ({spec.provider})")
        out_tokens = max_tokens or spec.max_output_tokens
        prompt_chars = sum(len(m.get("content", "")) + 16 for m in messages)
        request = _request_body(spec, messages, out_tokens)
        estimate = cost_usd(spec, estimate_tokens(prompt_chars), out_tokens // 2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + spec.timeout_s
        state = _AttemptState()

        def retry_hook(exc: Exception) -> bool | float:
            if not isinstance(exc, LaneError) or not exc.retryable or exc.content_started:
                return False
            if exc.kind == "incomplete":
                if state.incomplete_retries >= INCOMPLETE_RETRIES:
                    return False
                state.incomplete_retries += 1
            log.info("retrying model %s after %s%s", spec.model, exc.retry_reason(),
                     f" (Retry-After {exc.retry_after:g} s)" if exc.retry_after is not None else "")
            return exc.retry_after if exc.retry_after is not None else True

        try:
            async for attempt in stamina.retry_context(on=retry_hook, attempts=MAX_ATTEMPTS, timeout=spec.timeout_s,
                                                       wait_initial=0.5, wait_max=8.0, wait_jitter=0.5):
                with attempt:
                    state.retries = attempt.num - 1
                    self.guard.check_before(task, estimate, spec.model)
                    result = await self._stream_once(spec, url, key, request, on_delta, deadline)
                    break
            else:  # pragma: no cover - stamina raises the last error instead
                raise LaneError("server", f"{spec.model}: no attempt was made")
        except LaneError as exc:
            if exc.kind == "too_large":
                # The model was paid for what it sent: book that, estimated, before the error goes up.
                exc.input_tokens, exc.output_tokens, _ = _tokens(None, prompt_chars, exc.received_chars, out_tokens)
                exc.cost_usd = round(cost_usd(spec, exc.input_tokens, exc.output_tokens), 10)
                exc.cost_estimated = True
                self.guard.record_after(task, exc.cost_usd, spec.model)
            raise
        text, finish, usage = result
        latency = loop.time() - started
        input_tokens, output_tokens, reported = _tokens(usage, prompt_chars, len(text), out_tokens)
        provider_cost = usage.get("cost") if usage else None
        if isinstance(provider_cost, int | float) and not isinstance(provider_cost, bool):
            actual, source = float(provider_cost), "provider"
        elif spec.price_per_mtok is not None:
            actual, source = cost_usd(spec, input_tokens, output_tokens), "policy"
        else:
            actual, source = 0.0, "unpriced"
        within = self.guard.record_after(task, actual, spec.model)
        return LaneReply(text=text, model=spec.model, provider=spec.provider, input_tokens=input_tokens,
                         output_tokens=output_tokens, cost_usd=round(actual, 10), latency_seconds=round(latency, 4),
                         finish_reason=finish, retries=state.retries, usage_reported=reported,
                         cost_source=source, within_budget=within,  # type: ignore[arg-type]
                         redacted=tuple(str(n) for n in request.notes))

    # -- one HTTP request ------------------------------------------------------------------------
    async def _stream_once(self, spec: ModelSpec, url: str, key: str | None, request_body: Guarded,
                           on_delta: Callable[[str], None] | None,
                           deadline: float) -> tuple[str, str, dict[str, Any] | None]:
        loop = asyncio.get_running_loop()
        if loop.time() >= deadline:
            raise LaneError("timeout", f"{spec.model}: no complete reply within {spec.timeout_s:g} s (timeout_s)")
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json", "Cache-Control": "no-store"}
        if spec.provider == "openrouter":
            headers["X-Title"] = "route-agent"
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(connect=spec.connect_timeout_s, read=spec.idle_timeout_s,
                                write=spec.idle_timeout_s, pool=spec.connect_timeout_s)
        request = self._http.build_request("POST", url, content=json.dumps(request_body.body).encode(), headers=headers, timeout=timeout)
        parts: list[str] = []
        where = "waiting for"
        try:
            async with asyncio.timeout_at(deadline) as timer:
                response = await self._http.send(request, stream=True)
                try:
                    where = "reading"
                    return await self._read_response(spec, response, parts, on_delta, deadline, timer, key)
                finally:
                    await response.aclose()
        except TimeoutError:
            now = loop.time()
            if now >= deadline - 1e-3:
                raise _err("timeout", f"{spec.model}: no complete reply within {spec.timeout_s:g} s (timeout_s); "
                           "nothing from this reply is used", parts, retryable=False) from None
            raise _err("incomplete", f"{spec.model}: no data for {spec.idle_timeout_s:g} s (idle_timeout_s; "
                       "keep-alive comments do not count); the stream is discarded", parts, retryable=True) from None
        except httpx.TimeoutException as exc:
            raise _err("timeout", f"{spec.model}: {type(exc).__name__} while {where} {_host(url)} "
                       f"(connect {spec.connect_timeout_s:g} s, idle {spec.idle_timeout_s:g} s)", parts, retryable=True) from None
        except httpx.RemoteProtocolError as exc:
            raise _err("incomplete", f"{spec.model}: the stream was cut before it finished ({_scrub(str(exc), key)}); "
                       "nothing from it is used", parts, retryable=True) from None
        except httpx.TransportError as exc:
            kind: LaneErrorKind = "incomplete" if where == "reading" else "server"
            raise _err(kind, f"{spec.model}: connection error while {where} {_host(url)}: "
                       f"{type(exc).__name__} {_scrub(str(exc), key)}", parts, retryable=True) from None

    async def _read_response(self, spec: ModelSpec, response: httpx.Response, parts: list[str],  # noqa: PLR0912, PLR0915 (one branch per stream event and fault: safety.md's stream rules in one place)
                             on_delta: Callable[[str], None] | None, deadline: float,
                             timer: asyncio.Timeout, key: str | None) -> tuple[str, str, dict[str, Any] | None]:
        loop = asyncio.get_running_loop()
        status = response.status_code
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if status != 200:
            raw = await _read_capped(response, MAX_ERROR_BODY)
            raise _status_error(spec, status, response.headers, raw, key, deadline - loop.time())
        if content_type == "text/html":
            raise LaneError("html", f"{spec.model}: {_host(str(response.url))} answered 200 with an HTML page, not a chat "
                            "completion; check the model's base_url (it should end in /v1)", status)
        if content_type == "application/json":
            raw = await _read_capped(response, MAX_JSON_BODY + 1)
            if len(raw) > MAX_JSON_BODY:
                raise _too_large(spec, f"its JSON body passed {MAX_JSON_BODY >> 20} MiB", MAX_JSON_BODY)
            return _parse_json_completion(spec, raw, key)
        if content_type != "text/event-stream":
            head = await _read_capped(response, 512)
            if head.lstrip()[:1] == b"<":
                raise LaneError("html", f"{spec.model}: {_host(str(response.url))} answered 200 with markup "
                                f"({content_type or 'no content type'}), not a chat completion; check base_url", status)
            raise LaneError("incomplete", f"{spec.model}: unexpected content type {content_type or '(none)'} for a "
                            "streamed chat completion", status)
        finish: str | None = None
        usage: dict[str, Any] | None = None
        done = False
        idle = spec.idle_timeout_s
        timer.reschedule(min(loop.time() + idle, deadline))
        stream = _CappedText(spec, response, max(MAX_STREAM_CHARS, STREAM_CHARS_PER_TOKEN * spec.max_output_tokens))
        events = EventSource(cast(httpx.Response, stream)).aiter_sse()
        received = 0
        async for event in events:
            data = event.data
            if not data.strip():
                continue  # an empty event is no more than a keep-alive
            if data.strip() == "[DONE]":
                done = True
                break
            timer.reschedule(min(loop.time() + idle, deadline))
            try:
                chunk = json.loads(data)
            except ValueError:
                raise _err("incomplete", f"{spec.model}: the stream carried a data event that is not JSON", parts,
                           retryable=True) from None
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error") is not None:
                raise _err("incomplete", f"{spec.model}: the stream carried an error event inside HTTP 200: "
                           f"{_scrub(_error_text(chunk), key)}; nothing from it is used", parts, retryable=True)
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or {}
                piece = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(piece, str) and piece:
                    received += len(piece)
                    if received > MAX_REPLY_CHARS:
                        raise _too_large(spec, f"its content passed {MAX_REPLY_CHARS >> 20} MiB", received)
                    parts.append(piece)
                    if on_delta is not None:
                        on_delta(piece)
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and reason:
                    finish = reason
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
        timer.reschedule(deadline)
        if done:
            await _drain(events)
        if not done:
            raise _err("incomplete", f"{spec.model}: the stream closed without its end marker ([DONE])"
                       + (f" after finish_reason {finish!r}" if finish else " and without a finish_reason")
                       + "; nothing from it is used", parts, retryable=True)
        return _finished(spec, "".join(parts), finish, usage, parts)


async def _drain(events: AsyncIterator[object]) -> None:
    """Read what follows `[DONE]` (normally just the end of the body) so that the connection goes
    back to the pool; a server that keeps talking gets 0.25 s, then the connection is dropped."""
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(0.25):
            extra = 0
            async for _ in events:
                extra += 1
                if extra > 16:
                    break


def _request_body(spec: ModelSpec, messages: list[dict[str, str]], max_tokens: int) -> Guarded:
    """The JSON body of a chat completion request, through the never-send and secret gate (outbound.py).

    Every request is built here and nowhere else (`_stream_once` sends only a `Guarded` body): whatever a
    caller put in `messages` (a lane prompt, the verifier's diff and check output, an agent's turn) is
    redacted before it can leave.
    """
    body: dict[str, Any] = {
        "model": spec.model, "messages": messages, "stream": True, "max_tokens": max_tokens,
        "temperature": spec.temperature, "stream_options": {"include_usage": True},
    }
    if spec.provider == "openrouter":
        body["usage"] = {"include": True}
    guarded = guard_request(body)
    if guarded.notes:
        log.info("%s: %d redaction(s) before sending: %s", spec.model, len(guarded.notes),
                 "; ".join(str(n) for n in guarded.notes[:10]))
    return guarded


def chat_completions_url(spec: ModelSpec) -> str:
    base = spec.base_url or DEFAULT_BASE_URLS.get(spec.provider)
    if not base:
        raise LaneError("config", f"model {spec.model!r} uses provider openai-compatible, which needs base_url "
                        "(for example http://127.0.0.1:8000/v1)")
    if not base.startswith(("http://", "https://")):
        raise LaneError("config", f"base_url {base!r} of model {spec.model!r} must start with http:// or https://")
    return base.rstrip("/") + "/chat/completions"


def _finished(spec: ModelSpec, text: str, finish: str | None, usage: dict[str, Any] | None,
              parts: list[str]) -> tuple[str, str, dict[str, Any] | None]:
    if finish is None:
        raise _err("incomplete", f"{spec.model}: the reply ended without a finish_reason; nothing from it is used",
                   parts, retryable=True)
    if finish == "length":
        raise _err("incomplete", f"{spec.model}: the reply was cut at the output limit (finish_reason 'length', "
                   f"max {spec.max_output_tokens} tokens); nothing from it is used", parts, retryable=False)
    if finish not in COMPLETE_FINISH_REASONS:
        raise _err("incomplete", f"{spec.model}: the reply stopped with finish_reason {finish!r}, not 'stop'; "
                   "nothing from it is used", parts, retryable=False)
    return text, finish, usage


def _parse_json_completion(spec: ModelSpec, raw: bytes, key: str | None) -> tuple[str, str, dict[str, Any] | None]:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise LaneError("incomplete", f"{spec.model}: the JSON reply is not valid JSON", 200) from None
    if not isinstance(payload, dict):
        raise LaneError("incomplete", f"{spec.model}: the JSON reply is not an object", 200)
    if payload.get("error") is not None:
        raise LaneError("incomplete", f"{spec.model}: HTTP 200 carrying an error: {_scrub(_error_text(payload), key)}", 200)
    choices = payload.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = first.get("message") or {}
    text = message.get("content") if isinstance(message, dict) else None
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
    return _finished(spec, text if isinstance(text, str) else "", first.get("finish_reason"), usage, [])


def _status_error(spec: ModelSpec, status: int, headers: httpx.Headers, raw: bytes, key: str | None,
                  remaining: float) -> LaneError:
    detail = _scrub(_error_text_from_bytes(raw), key)
    said = f": {detail}" if detail else ""
    if status == 400:
        return LaneError("bad_request", f"{spec.model}: the server rejected the request (400){said}", status)
    if status in (401, 403):
        env = api_key_env_for(spec) or "the API key"
        return LaneError("auth", f"{spec.model}: authentication failed ({status}); check {env}{said}", status)
    if status == 402:
        return LaneError("payment", f"{spec.model}: the provider wants payment (402): add credit to the account{said}", status)
    if status == 404:
        return LaneError("config", f"{spec.model}: not found (404) at {_host(chat_completions_url(spec))}; check the "
                         f"model name and base_url{said}", status)
    if status not in RETRY_STATUSES:
        return LaneError("bad_request", f"{spec.model}: unexpected HTTP {status}{said}", status)
    kind: LaneErrorKind = "rate_limited" if status == 429 else "timeout" if status == 408 else "server"
    error = LaneError(kind, f"{spec.model}: HTTP {status}{said}", status)
    wait = parse_retry_after(headers)
    if wait is not None:
        cap = min(MAX_RETRY_AFTER_S, max(0.0, remaining))
        if wait > cap:
            error.message = (f"{spec.model}: HTTP {status}, and the server asks to wait {_duration(wait)} (Retry-After) "
                             f"before retrying, more than the {_duration(cap)} route-agent waits; try again later{said}")
            error.args = (error.message,)
            return error
        error.retry_after = wait
    error.retryable = True
    return error


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), else None."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _err(kind: LaneErrorKind, message: str, parts: list[str], *, retryable: bool) -> LaneError:
    error = LaneError(kind, message)
    error.retryable = retryable
    error.content_started = bool(parts)
    return error


def _tokens(usage: dict[str, Any] | None, prompt_chars: int, reply_chars: int, max_output: int) -> tuple[int, int, bool]:
    """Tokens from `usage`, else estimated from what was sent and received (4 characters a token, output
    at most the `max_tokens` asked for: a provider stops, and bills, there); the flag says which."""
    if usage:
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion, True
    output = min(max_output, (reply_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN)
    return (prompt_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN, output, False


def _too_large(spec: ModelSpec, what: str, received_chars: int) -> LaneError:
    error = LaneError("too_large", f"{spec.model}: the reply is too large ({what}); route-agent stopped reading it "
                      "and nothing from it is used")
    error.content_started = True
    error.received_chars = received_chars
    return error


class _CappedText:
    """The part of an `httpx.Response` that `EventSource` reads, failing once `limit` characters have
    come: an SSE line is buffered whole until its newline, so the cap must sit below the parser."""

    def __init__(self, spec: ModelSpec, response: httpx.Response, limit: int) -> None:
        self._spec = spec
        self._response = response
        self.headers = response.headers
        self.limit = limit
        self.received = 0

    async def aiter_text(self) -> AsyncIterator[str]:
        async for text in self._response.aiter_text():
            self.received += len(text)
            if self.received > self.limit:
                raise _too_large(self._spec, f"its stream passed {self.limit >> 20} MiB", self.received)
            yield text


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


# A server's error text is scrubbed first and shortened after (`_scrub`): cut first, a key that
# straddled the cut would be printed in part.
_RAW_ERROR_CHARS = 8192
_SHOWN_ERROR_CHARS = 300


def _error_text(payload: dict[str, Any]) -> str:
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message") or error.get("code") or json.dumps(error)[:_RAW_ERROR_CHARS]
        return str(message)[:_RAW_ERROR_CHARS]
    return str(error)[:_RAW_ERROR_CHARS]


def _error_text_from_bytes(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:_RAW_ERROR_CHARS]
    return _error_text(payload) if isinstance(payload, dict) else text[:_RAW_ERROR_CHARS]


_BEARER = re.compile(r"(?i)(bearer\s+|api[_ -]?key[\"'=: ]+)[A-Za-z0-9._\-]{16,}")


def _scrub(text: str, key: str | None) -> str:
    """Text from a server or an exception, with the key (or anything shaped like one) removed: as
    sent, in any letter case, base64 (standard or URL-safe, at any alignment, also inside a Basic
    credential) and URL-encoded (issue 12, item 12: a server that echoes the key encoded)."""
    if key and len(key) >= 4:
        text = _key_pattern(key).sub("[redacted]", text)
        # The text may end in the first part of the key (a server that cut its own message).
        folded = text.casefold()
        for n in range(len(key) - 1, 7, -1):
            if folded.endswith(key[:n].casefold()):
                text = text[:-n] + "[redacted]"
                break
    text = _BEARER.sub(lambda m: m.group(1) + "[redacted]", text)
    return text if len(text) <= _SHOWN_ERROR_CHARS else text[: _SHOWN_ERROR_CHARS - 1] + "…"


@functools.lru_cache(maxsize=8)
def _key_pattern(key: str) -> re.Pattern[str]:
    import base64
    from urllib.parse import quote, quote_plus

    variants = {key, quote(key, safe=""), quote_plus(key)}
    case_insensitive = "|".join(re.escape(v) for v in sorted(variants, key=len, reverse=True))
    raw = key.encode("utf-8")
    encoded: set[str] = set()
    for shift in range(3):
        # The base64 characters that depend on the key's bytes only, whatever comes before or after.
        text = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        first = -(-8 * shift // 6)
        last = (8 * (shift + len(raw))) // 6
        core = text[first:last]
        if len(core) >= 8:
            encoded.update({core, core.replace("+", "-").replace("/", "_")})
    exact = "|".join(re.escape(v) for v in sorted(encoded, key=len, reverse=True))
    return re.compile(f"(?i:{case_insensitive})" + (f"|{exact}" if exact else ""))


def _host(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "the server"
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h ({seconds:.0f} s)"
    return f"{seconds:.0f} s"


def _replace(reply: LaneReply, **changes: Any) -> LaneReply:
    import dataclasses

    return dataclasses.replace(reply, **changes)
