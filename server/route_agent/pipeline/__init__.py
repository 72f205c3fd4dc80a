"""The pipeline: one task run, async and cancellable, as a stream of events (see run.py)."""

from __future__ import annotations

from route_agent.pipeline import events
from route_agent.pipeline.run import RunRequest, run_task

__all__ = ["RunRequest", "events", "run_task"]
