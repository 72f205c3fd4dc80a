"""Cost estimates before a call, from the policy's prices and a documented token estimate.

Estimate: one token per 4 characters of prompt (the common rule of thumb for English and code with
BPE tokenizers), capped at the lane's `max_context_tokens`, plus the lane's `max_output_tokens / 2`
as the expected reply. Actual cost comes from the response's `usage` after the call.
"""

from __future__ import annotations

from route_agent.policy.models import ModelSpec
from route_agent.signals.changeset import ChangeSet

CHARS_PER_TOKEN = 4
PROMPT_OVERHEAD_TOKENS = 600


def estimate_tokens(text_chars: int) -> int:
    return (text_chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def cost_usd(spec: ModelSpec, input_tokens: int, output_tokens: int) -> float:
    price = spec.price_per_mtok
    if price is None:
        return 0.0
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


def estimate_call_cost(spec: ModelSpec, change_set: ChangeSet, brief_chars: int = 0) -> float:
    chars = brief_chars + sum(len(text) + 8 for f in change_set.files for _, text in (*f.added, *f.removed))
    input_tokens = min(spec.max_context_tokens, PROMPT_OVERHEAD_TOKENS + estimate_tokens(chars) * 3)
    return round(cost_usd(spec, input_tokens, spec.max_output_tokens // 2), 4)
