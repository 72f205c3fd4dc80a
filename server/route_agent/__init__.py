"""route-agent: score coding-agent tasks by risk, route them to a fast or strong model lane,
verify the result harder than it was routed, escalate, and keep a ledger of outcomes."""

from __future__ import annotations

__version__ = "0.1.0"
