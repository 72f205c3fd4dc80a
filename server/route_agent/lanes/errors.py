"""`LaneError`: every way a lane call fails, as a kind plus a message a user can act on.

Kinds: config, auth, payment, bad_request, rate_limited, server, incomplete, html, timeout, budget,
cancelled, too_large (a reply past the reply cap: reading stopped there). Messages never contain an
API key (the client scrubs server text before quoting it).
"""

from __future__ import annotations

from typing import Literal

LaneErrorKind = Literal[
    "config", "auth", "payment", "bad_request", "rate_limited", "server", "incomplete", "html", "timeout", "budget",
    "cancelled", "too_large",
]


_RETRY_WORDS: dict[str, str] = {
    "rate_limited": "a rate limit", "server": "a server error", "incomplete": "an incomplete reply",
    "html": "an HTML page instead of JSON", "timeout": "a timeout",
}


class LaneError(Exception):
    def __init__(self, kind: LaneErrorKind, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: LaneErrorKind = kind
        self.message = message
        self.status = status
        self.retry_after: float | None = None
        self.retryable = False
        self.content_started = False
        self.model: str | None = None
        # What a call that failed after content arrived is booked at (estimated from what was received).
        self.cost_usd = 0.0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_estimated = False
        self.received_chars = 0

    def retry_reason(self) -> str:
        """What went wrong, in words for a retry line: 'a server error (HTTP 503)'."""
        words = _RETRY_WORDS.get(self.kind, self.kind.replace("_", " "))
        return f"{words} (HTTP {self.status})" if self.status is not None else words

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"LaneError(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"
