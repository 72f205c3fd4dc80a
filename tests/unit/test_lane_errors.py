"""A retry line names what went wrong in words, not the error's internal kind."""

from __future__ import annotations

import pytest

from route_agent.lanes.errors import LaneError


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [
        pytest.param("server", 503, "a server error (HTTP 503)", id="server"),
        pytest.param("rate_limited", 429, "a rate limit (HTTP 429)", id="rate-limit"),
        pytest.param("timeout", None, "a timeout", id="timeout"),
        pytest.param("incomplete", None, "an incomplete reply", id="incomplete"),
    ],
)
def test_retry_reason(kind: str, status: int | None, words: str) -> None:
    assert LaneError(kind, "x", status=status).retry_reason() == words  # type: ignore[arg-type]
