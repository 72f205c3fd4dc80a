"""Routing: the itemized risk score, the lane choice, and what to do after an attempt."""

from __future__ import annotations

from route_agent.routing.decide import (
    AttemptOutcome,
    Contribution,
    Decision,
    LaneRefused,
    NextStep,
    Router,
    next_route,
)

__all__ = ["AttemptOutcome", "Contribution", "Decision", "LaneRefused", "NextStep", "Router", "next_route"]
