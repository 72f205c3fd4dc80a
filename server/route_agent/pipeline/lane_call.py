"""The lane-call seam: what a run asks of a lane, and the one function that asks it.

    caller = open_lane_caller(policy, environ, ledger, override)   # a LaneCaller
    reply = await call_lane(caller, lane, messages, on_delta)      # a LaneReply, or LaneError
    await caller.aclose()

`LaneCaller` is the small interface the pipeline needs: the HTTP `LaneClient` implements it, and so
can another executor (a test double, an agent) passed as `RunRequest.lane_caller`. Everything a run
does between building the prompt and reading the reply goes through `call_lane`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from route_agent.lanes.budget import SpendSource
from route_agent.lanes.client import LaneClient, LaneReply, Role
from route_agent.policy.models import Policy
from route_agent.routing.decide import Lane

__all__ = ["LaneCaller", "LaneReply", "call_lane", "open_lane_caller"]


class LaneCaller(Protocol):
    """Answers a lane's (or the verifier's) chat messages with a complete reply, or raises LaneError."""

    async def complete(
        self, role: Role, messages: list[dict[str, str]], *, on_delta: Callable[[str], None] | None = None
    ) -> LaneReply: ...

    async def aclose(self) -> None: ...


def open_lane_caller(
    policy: Policy, environ: Mapping[str, str] | None, spend_source: SpendSource | None, override: LaneCaller | None = None
) -> LaneCaller:
    """The run's lane caller: `override` when given, else an HTTP client for the policy's models."""
    if override is not None:
        return override
    return LaneClient(policy, environ=environ, spend_source=spend_source)


async def call_lane(
    caller: LaneCaller, lane: Lane, messages: list[dict[str, str]], on_delta: Callable[[str], None]
) -> LaneReply:
    """One attempt's lane call: the prompt's messages in, the reply (whose text holds the patch) out.

    `on_delta` receives streamed text as it arrives (for progress). Raises LaneError on failure.
    """
    return await caller.complete(lane, messages, on_delta=on_delta)
