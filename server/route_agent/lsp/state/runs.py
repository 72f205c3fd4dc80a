"""Routed runs started from the editor: their status, findings and patch, by run id.

Plain data; `features/routed_run.py` fills it from the pipeline's events.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

RunStatus = Literal["running", "passed", "failed", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    message: str
    path: str | None = None
    """Repository-relative path in the user's files."""
    line: int | None = None
    """1-based."""
    column: int | None = None
    severity: Literal["error", "warning", "info"] = "error"


@dataclass
class RunRecord:
    run_id: str
    folder_uri: str
    brief: str
    lane: str
    status: RunStatus = "running"
    findings: list[Finding] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    patch: str | None = None
    """Unified diff of the verified patch."""
    new_texts: dict[str, str | None] = field(default_factory=dict)
    """Repository-relative path -> the patched file's text (None: deleted)."""
    base_texts: dict[str, str | None] = field(default_factory=dict)
    """Repository-relative path -> the text the patch was made against (None: did not exist)."""
    escalated: bool = False
    escalation_offered: bool = False
    message: str = ""
    task: asyncio.Task[None] | None = None
    anchor: tuple[str, int] | None = None
    """Where the escalation prompt diagnostic goes: (relative path, 0-based line)."""

    @property
    def can_escalate(self) -> bool:
        return self.status == "failed" and self.lane == "fast" and not self.escalated

    @property
    def can_apply(self) -> bool:
        return self.status == "passed" and bool(self.new_texts)


class RunRegistry:
    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self.latest_by_folder: dict[str, str] = {}

    def add(self, record: RunRecord) -> None:
        self._runs[record.run_id] = record
        self.latest_by_folder[record.folder_uri] = record.run_id

    def get(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def latest(self, folder_uri: str) -> RunRecord | None:
        run_id = self.latest_by_folder.get(folder_uri)
        return self._runs.get(run_id) if run_id else None

    def all(self) -> list[RunRecord]:
        return list(self._runs.values())

    async def cancel_all(self) -> None:
        tasks = [r.task for r in self._runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=1.5)
