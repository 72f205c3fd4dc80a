"""Classify evaluation tasks with the product's own router, once per task.

`pre-task` reads only the repository name and the problem statement; `gold` adds the reference patch
as the change set. Signals are computed once; re-deciding them under another policy's weights and
thresholds (`redecide`) uses the same `Router.decide` the product uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from route_agent.eval.changesets import gold_change_set, pretask_change_set
from route_agent.eval.data import EvalInputError, Task
from route_agent.policy.models import Policy
from route_agent.routing.decide import Decision, Router
from route_agent.signals.compute import Signals
from route_agent.workspace.git import WorkspaceError

SignalMode = Literal["pre-task", "gold"]
SIGNAL_MODES: tuple[SignalMode, ...] = ("pre-task", "gold")
GOLD_LABEL = "gold (leaky upper bound)"
ALWAYS_STRONG_KEY = 1_000_000.0


def mode_label(mode: SignalMode) -> str:
    return GOLD_LABEL if mode == "gold" else "pre-task"


def classify_tasks(tasks: Sequence[Task], policy: Policy, mode: SignalMode, tasks_file: str = "tasks") -> list[Decision]:
    router = Router(policy)
    decisions: list[Decision] = []
    for task in tasks:
        router.repo = task.repo  # a learned policy's repository feature
        if mode == "pre-task":
            change_set = pretask_change_set(task.repo, task.problem_statement)
        else:
            if not task.patch:
                raise EvalInputError(f"{tasks_file}:{task.line}: --signals gold needs a 'patch' on every task")
            try:
                change_set = gold_change_set(task.patch)
            except WorkspaceError as exc:
                raise EvalInputError(f"{tasks_file}:{task.line}: the patch of {task.instance_id}: {exc}") from None
        decisions.append(router.classify(change_set, task.problem_statement))
    return decisions


def redecide(signals: Sequence[Signals], policy: Policy) -> list[Decision]:
    """Decisions for already computed signals under `policy` (its weights and thresholds).

    Valid when `policy` has the same path rules as the policy the signals were computed with.
    """
    router = Router(policy)
    return [router.decide(s) for s in signals]


def ordering_key(decision: Decision) -> float:
    """Higher = routed strong sooner: always-strong tasks above every score, then the risk score."""
    return decision.risk_score + (ALWAYS_STRONG_KEY if decision.always_strong else 0.0)


def fired_signals(decision: Decision) -> tuple[str, ...]:
    names = set(decision.signals.raised)
    return tuple(sorted(names))
