"""Turn a decision or a run into the human transcript (the design notes' shape) or JSON."""

from __future__ import annotations

import shlex
from typing import Any

from route_agent.policy.models import Check
from route_agent.policy.toolchain import NO_CHECKS_NOTE
from route_agent.routing.decide import Decision


def verification_line(checks: list[Check]) -> str:
    return " && ".join(shlex.join(c.run) for c in checks) if checks else NO_CHECKS_NOTE


def human_decision(decision: Decision) -> list[str]:
    lines = [f"classifier: {decision.signals.summary_line()}", f"risk_score: {decision.risk_score}"]
    for item in decision.contributions:
        where = ", ".join(str(e) for e in item.evidence[:3])
        more = f" (+{len(item.evidence) - 3} more)" if len(item.evidence) > 3 else ""
        lines.append(f"  +{item.points} {item.signal}: {item.reason}" + (f" [{where}{more}]" if where else ""))
    for hit in decision.always_strong:
        lines.append(f"always_strong: {hit}")
    if decision.signals.hidden_characters:
        total = sum(r.count for r in decision.signals.hidden_characters)
        kinds = ", ".join(sorted({r.kind for r in decision.signals.hidden_characters}))
        lines.append(f"hidden_characters: {total} stripped from the brief ({kinds}); they cannot lower the risk")
    lines.append(f"selected_lane: {decision.lane}")
    lines.append(f"lane_reason: {decision.lane_reason}")
    if decision.plan is not None:
        lines.append(f"plan: {decision.plan.plan} ({decision.plan.reason})")
        p = decision.plan.prediction
        if p is not None:
            lines.append(f"predicted: P(fast passes) {p.fast:.2f}, P(strong passes) {p.strong:.2f}, "
                         f"P(strong passes | fast failed) {p.strong_after_fast_failed:.2f}")
    return lines


def json_base(decision: Decision, checks: list[Check]) -> dict[str, Any]:
    out = decision.as_dict()
    out["verification"] = [shlex.join(c.run) for c in checks]
    out["verification_checks"] = [{"name": c.name, "run": list(c.run), "parser": c.parser, "timeout_s": c.timeout_s} for c in checks]
    return out
