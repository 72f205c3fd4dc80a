"""Routed runs started from the editor: their status, findings and patch, by run id.

Plain data; `lsp/routed_runs.py` fills it from the pipeline's events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from route_agent.verify.findings import Finding

RunStatus = Literal["running", "passed", "failed", "cancelled", "error"]

CANCEL_GRACE_S = 1.5
"""How long cancelling waits for a run's cleanup (HTTP stream closed, checks killed, worktree removed)."""


@dataclass
class RunRecord:
    run_id: str
    folder_uri: str
    brief: str
    lane: str
    """The lane of the run's (last) attempt: the requested lane until the pipeline classified."""
    task_id: str | None = None
    """The ledger task this run belongs to when it continues another run (an escalation)."""
    status: RunStatus = "running"
    findings: tuple[Finding, ...] = ()
    """The last attempt's findings as the pipeline reported them (diagnostics; an escalated run's prompt)."""
    failed_checks: list[str] = field(default_factory=list)
    reasons: tuple[str, ...] = ()
    """Why the last attempt did not pass (the pipeline's next-route reasons: tamper, failed_tests, ...)."""
    patch: str | None = None
    """Unified diff of the verified patch."""
    new_texts: dict[str, str | None] = field(default_factory=dict)
    """Repository-relative path -> the patched file's text (None: deleted)."""
    base_texts: dict[str, str | None] = field(default_factory=dict)
    """Repository-relative path -> the text the patch was made against (None: did not exist)."""
    escalated: bool = False
    """This run was escalated (a strong run was started from it), or is itself an escalation."""
    escalated_from: str | None = None
    message: str = ""
    risk_score: int | None = None
    cost_usd: float = 0.0
    task: asyncio.Task[None] | None = None
    progress_token: str | None = None
    anchor: tuple[str, int] | None = None
    """Where the escalation prompt diagnostic goes: (relative path, 0-based line)."""
    origin: str | None = None
    """The file the run was started from (repository-relative): where a finding without a path shows."""
    progress_logged_at: float = 0.0
    """When lane progress was last logged (clients without work-done progress get it in the log)."""

    @property
    def can_escalate(self) -> bool:
        return self.status == "failed" and self.lane == "fast" and not self.escalated

    @property
    def can_apply(self) -> bool:
        return self.status == "passed" and bool(self.new_texts)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def as_dict(self) -> dict[str, object]:
        return {"run_id": self.run_id, "folder": self.folder_uri, "status": self.status, "lane": self.lane,
                "escalated": self.escalated, "escalated_from": self.escalated_from, "message": self.message,
                "risk_score": self.risk_score, "cost_usd": round(self.cost_usd, 6), "reasons": list(self.reasons),
                "failed_checks": list(self.failed_checks), "findings": len(self.findings), "has_patch": bool(self.patch)}


class RunRegistry:
    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self.latest_by_folder: dict[str, str] = {}
        self._by_token: dict[str, str] = {}

    def add(self, record: RunRecord) -> None:
        self._runs[record.run_id] = record
        self.latest_by_folder[record.folder_uri] = record.run_id
        if record.progress_token is not None:
            self._by_token[record.progress_token] = record.run_id

    def get(self, run_id: str) -> RunRecord | None:
        return self._runs.get(run_id)

    def by_token(self, token: str) -> RunRecord | None:
        run_id = self._by_token.get(token)
        return self._runs.get(run_id) if run_id else None

    def latest(self, folder_uri: str) -> RunRecord | None:
        run_id = self.latest_by_folder.get(folder_uri)
        return self._runs.get(run_id) if run_id else None

    def all(self) -> list[RunRecord]:
        return list(self._runs.values())

    def running(self) -> list[RunRecord]:
        return [r for r in self._runs.values() if r.running]

    async def cancel(self, records: Sequence[RunRecord], grace_s: float = CANCEL_GRACE_S) -> bool:
        """Cancel the runs' tasks and wait (bounded) for their cleanup; True when any was running."""
        tasks = [r.task for r in records if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        return bool(tasks)

    async def cancel_all(self) -> None:
        with contextlib.suppress(Exception):
            await self.cancel(self.running())
