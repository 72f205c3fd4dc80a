"""Budgets per task and per day, checked before a call (estimate) and after it (actual).

    class SpendSource(Protocol):
        def spent_today_usd(self) -> float: ...          # the ledger implements this
    InMemorySpend(spent_usd=0.0)                           # for tests and ledger-less runs
    TaskSpend()                                            # what one task has spent so far
    BudgetGuard(budgets, spend_source=None)
        .check_before(task, estimate_usd, model) -> None   # raises LaneError(kind="budget")
        .record_after(task, actual_usd, model) -> bool     # False once a budget is spent

A spent budget stops the run with a clear message; a lane is never downgraded to a cheaper model to
fit a budget. A day's spend that cannot be read (a shared ledger that went away and never answered)
is unknown, not zero: the call is refused with a message. The day's spend comes from the `SpendSource` (the ledger's rows for today); this
module never writes it, so a call is counted once, by whoever records the attempt.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from route_agent.lanes.errors import LaneError
from route_agent.policy.models import Budgets


@runtime_checkable
class SpendSource(Protocol):
    def spent_today_usd(self) -> float: ...


@dataclass
class InMemorySpend:
    """A `SpendSource` held in memory; `add` what each call cost."""

    spent_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def spent_today_usd(self) -> float:
        return self.spent_usd

    def add(self, usd: float) -> None:
        with self._lock:
            self.spent_usd += usd


@dataclass
class TaskSpend:
    """Money spent by one task across all its lane calls (retries, fallbacks, escalations)."""

    spent_usd: float = 0.0
    calls: int = 0


class BudgetGuard:
    def __init__(self, budgets: Budgets, spend_source: SpendSource | None = None) -> None:
        self.budgets = budgets
        self.spend_source = spend_source

    def check_before(self, task: TaskSpend, estimate_usd: float, model: str) -> None:
        per_task = self.budgets.per_task_usd
        if per_task is not None:
            if task.spent_usd >= per_task:
                raise LaneError("budget", f"the per-task budget of ${per_task:.2f} is spent (${task.spent_usd:.4f} so far); "
                                "the run stops here. Raise budgets.per_task_usd in the policy to continue")
            if task.spent_usd + estimate_usd > per_task:
                raise LaneError("budget", f"calling {model} is estimated at ${estimate_usd:.4f}, which would pass the per-task "
                                f"budget of ${per_task:.2f} (${task.spent_usd:.4f} spent); the run stops here rather than "
                                "switching to a cheaper model. Raise budgets.per_task_usd to continue")
        per_day = self.budgets.per_day_usd
        if per_day is not None and self.spend_source is not None:
            today = self._spent_today(per_day, model)
            if today >= per_day:
                raise LaneError("budget", f"the per-day budget of ${per_day:.2f} is spent (${today:.4f} today); "
                                "the run stops here. Raise budgets.per_day_usd or wait until tomorrow")
            if today + estimate_usd > per_day:
                raise LaneError("budget", f"calling {model} is estimated at ${estimate_usd:.4f}, which would pass the per-day "
                                f"budget of ${per_day:.2f} (${today:.4f} spent today); the run stops here")

    def _spent_today(self, per_day: float, model: str) -> float:
        """Today's spend; one that cannot be read stops the call (fail safe: never spend blind)."""
        assert self.spend_source is not None
        try:
            return self.spend_source.spent_today_usd()
        except Exception as exc:  # a ledger that cannot be read: the spend is unknown, not zero
            raise LaneError("budget", f"today's spend is unknown ({exc}), so calling {model} could pass the per-day budget of "
                            f"${per_day:.2f}; the run stops here. Bring the ledger back, or run with --ledger naming one "
                            "that can be read") from None

    def record_after(self, task: TaskSpend, actual_usd: float, model: str) -> bool:
        """Add a call's actual cost; False when a budget is now spent (the next call will stop)."""
        task.spent_usd += actual_usd
        task.calls += 1
        per_task = self.budgets.per_task_usd
        if per_task is not None and task.spent_usd >= per_task:
            return False
        per_day = self.budgets.per_day_usd
        if per_day is None or self.spend_source is None:
            return True
        try:
            return self.spend_source.spent_today_usd() + actual_usd < per_day
        except Exception:  # unknown spend: the next call's check stops the run with the reason
            return False
