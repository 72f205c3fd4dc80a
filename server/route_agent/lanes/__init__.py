"""Model lanes: HTTP calls to the fast, strong and verifier models, prompts, budgets.

Public API (imported lazily, so `route_agent.lanes.estimate` stays free of httpx):

    LaneClient(policy, environ=None, transport=None, *, spend_source=None, task=None)
        await .complete(role, messages, *, on_delta=None, max_tokens=None, task=None) -> LaneReply
        await .aclose()
    LaneReply(text, model, provider, input_tokens, output_tokens, cost_usd, latency_seconds,
              finish_reason, retries, fallback_used, usage_reported, cost_source, within_budget, errors)
    LaneError(kind, message, status=None)      kinds: config auth payment bad_request rate_limited
                                               server incomplete html timeout budget cancelled
    build_prompt(brief, change_set, repo_root, spec, findings=None, *, read_file=None,
                 is_ignored=None, extra_paths=()) -> Prompt(messages, estimated_tokens, withheld,
                 redactions); Prompt.left_out -> list of dicts for the attempt record
    Withheld(path, line, reason); Redaction(path, line, rule)
    SpendSource (protocol: spent_today_usd() -> float), InMemorySpend, TaskSpend, BudgetGuard
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from route_agent.lanes.budget import BudgetGuard, InMemorySpend, SpendSource, TaskSpend
    from route_agent.lanes.client import LaneClient, LaneReply, Role
    from route_agent.lanes.errors import LaneError
    from route_agent.lanes.outbound import never_send_reason
    from route_agent.lanes.prompt import Prompt, Redaction, Withheld, build_prompt, redact_text

_WHERE = {
    "BudgetGuard": "budget", "InMemorySpend": "budget", "SpendSource": "budget", "TaskSpend": "budget",
    "LaneClient": "client", "LaneReply": "client", "Role": "client",
    "LaneError": "errors",
    "Prompt": "prompt", "Redaction": "prompt", "Withheld": "prompt", "build_prompt": "prompt", "never_send_reason": "outbound",
    "redact_text": "prompt",
}

__all__ = [
    "BudgetGuard", "InMemorySpend", "LaneClient", "LaneError", "LaneReply", "Prompt", "Redaction", "Role", "SpendSource",
    "TaskSpend", "Withheld", "build_prompt", "never_send_reason", "redact_text",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'route_agent.lanes' has no attribute {name!r}")
    return getattr(importlib.import_module(f"route_agent.lanes.{module}"), name)
