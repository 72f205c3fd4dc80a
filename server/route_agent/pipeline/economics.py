"""What a fast and a strong attempt typically cost here, for the rule that skips a fast lane that
cannot pay (`routing.skip_fast_when_it_cannot_pay`) and for a learned policy's plan choice.

From the policy's prices per million tokens and the ledger's typical (median) tokens per attempt in
each lane, once it has at least `MIN_ATTEMPTS` attempts with tokens in both; before that, the lanes'
own estimate for the change set (the same prompt to both lanes). The escalation rate is the share of
fast attempts the ledger records as escalated, once it has `MIN_ATTEMPTS` fast attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from route_agent.lanes.estimate import cost_usd, estimate_call_cost
from route_agent.ledger import LedgerError, open_ledger
from route_agent.ledger.report import percentile
from route_agent.ledger.store import AttemptRow, default_ledger_path
from route_agent.policy.models import Policy
from route_agent.routing.decide import LaneEconomics
from route_agent.signals.changeset import ChangeSet

MIN_ATTEMPTS = 20


def economics_from(policy: Policy, rows: Sequence[AttemptRow], change_set: ChangeSet | None = None) -> LaneEconomics | None:
    fast, strong = policy.models.fast, policy.models.strong
    if fast.price_per_mtok is None or strong.price_per_mtok is None:
        return None
    per_lane: dict[str, list[AttemptRow]] = {"fast": [], "strong": []}
    for row in rows:
        if row.lane in per_lane and (row.input_tokens or row.output_tokens):
            per_lane[row.lane].append(row)
    source = "the policy's prices and the lanes' token estimate"
    if all(len(v) >= MIN_ATTEMPTS for v in per_lane.values()):
        def typical(lane: str) -> tuple[int, int]:
            items = per_lane[lane]
            return (int(percentile([float(r.input_tokens) for r in items], 50) or 0),
                    int(percentile([float(r.output_tokens) for r in items], 50) or 0))

        f_in, f_out = typical("fast")
        s_in, s_out = typical("strong")
        fast_cost, strong_cost = cost_usd(fast, f_in, f_out), cost_usd(strong, s_in, s_out)
        source = "the policy's prices and the ledger's median tokens per attempt"
    else:
        cs = change_set or ChangeSet(files=())
        fast_cost, strong_cost = estimate_call_cost(fast, cs), estimate_call_cost(strong, cs)
    if strong_cost <= 0:
        return None
    fast_attempts = [r for r in rows if r.lane == "fast"]
    escalation = sum(1 for r in fast_attempts if r.escalated) / len(fast_attempts) if len(fast_attempts) >= MIN_ATTEMPTS else None
    return LaneEconomics(fast_cost / strong_cost, escalation, source)


def read_economics(policy: Policy, ledger_location: str | None, change_set: ChangeSet | None = None) -> LaneEconomics | None:
    """Economics from the ledger at `ledger_location` (the default one when None); a ledger that does
    not exist yet is not created, and one that cannot be read counts as empty."""
    rows: list[AttemptRow] = []
    is_pg = bool(ledger_location) and str(ledger_location).startswith(("postgresql://", "postgres://"))
    path = None if is_pg else Path(ledger_location).expanduser() if ledger_location else default_ledger_path()
    if is_pg or (path is not None and path.is_file()):
        try:
            ledger = open_ledger(ledger_location)
            try:
                rows = ledger.rows()
            finally:
                ledger.close()
        except LedgerError:
            rows = []
    return economics_from(policy, rows, change_set)
