"""Evaluation inputs from the ledger: the recorded attempts are the outcomes.

A task (its `task_id`: one run, or the runs an escalation from the editor joined) has its
repository and brief (the ledger keeps the first 500 characters) as the pre-task facts. The ledger
holds what happened, not the counterfactual: a run routed strong first has no fast outcome, and a
fast attempt that was accepted has no strong one. Only runs with an attempt in both lanes
(escalated runs, or runs re-done in the other lane) give
both outcomes; the others are left out and counted in a note. Escalated runs are mostly fast
failures, so ledger numbers describe that population, not all traffic; the note says so.
An attempt counts as resolved when it passed verification and the user did not reject it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from route_agent.eval.data import Dataset, EvalInputError, Prices, Task


def dataset_from_ledger(location: str, prices: Prices | None = None) -> Dataset:
    from route_agent.ledger import LedgerError, open_ledger

    if not location.startswith(("postgresql://", "postgres://")) and not Path(location).expanduser().is_file():
        raise EvalInputError(f"{location}: ledger not found")
    try:
        ledger = open_ledger(location)
        try:
            rows = ledger.rows()
        finally:
            ledger.close()
    except LedgerError as exc:
        raise EvalInputError(f"{location}: cannot read the ledger: {exc}") from None
    runs: dict[str, dict[str, tuple[int, float, str, str]]] = defaultdict(dict)
    for row in rows:
        if row.lane not in ("fast", "strong"):
            continue
        resolved = int(bool(row.passed) and row.review != "rejected")
        previous = runs[row.task].get(row.lane)
        cost = row.cost_usd + (previous[1] if previous else 0.0)
        # The last attempt in a lane decides its outcome; costs of repeated attempts add up.
        runs[row.task][row.lane] = (resolved, cost, row.repo or "(unknown)", row.brief or "")
    tasks: list[Task] = []
    fast_r: list[int] = []
    strong_r: list[int] = []
    fast_c: list[float] = []
    strong_c: list[float] = []
    partial = 0
    for run_id, lanes in runs.items():
        if "fast" not in lanes or "strong" not in lanes:
            partial += 1
            continue
        f, s = lanes["fast"], lanes["strong"]
        tasks.append(Task(run_id, f[2], f[3] or s[3], None, len(tasks) + 1))
        fast_r.append(f[0])
        strong_r.append(s[0])
        fast_c.append(f[1])
        strong_c.append(s[1])
    if not tasks:
        raise EvalInputError(
            f"{location}: no run has attempts in both lanes ({len(runs)} run(s) recorded); evaluation needs both outcomes per task"
        )
    notes = [f"ledger: {len(tasks)} run(s) with attempts in both lanes are evaluated; {partial} run(s) with one lane only are left out "
             "(mostly escalated runs: a population biased towards fast failures)"]
    source = "outcomes"
    if prices is not None:
        fast_c, strong_c, source = [prices.fast] * len(tasks), [prices.strong] * len(tasks), "price"
    elif sum(strong_c) <= 0:
        raise EvalInputError(f"{location}: the ledger records no strong-lane cost; pass --price fast=X,strong=Y")
    return Dataset(tasks, "fast", "strong", fast_r, strong_r, fast_c, strong_c, source, prices, notes)
