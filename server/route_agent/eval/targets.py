"""`--target KIND=VALUE` for `route-agent policy calibrate` and `policy learn`: each command names
the kinds it takes and what each kind's value must be; the parsing is `data.parse_setting`, as for `--price`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from route_agent.eval.data import ValueRule, parse_setting

K = TypeVar("K", bound=str)


@dataclass(frozen=True)
class Target(Generic[K]):
    kind: K
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


QUALITY = ValueRule(lambda v: 0 < v <= 2, "quality is a fraction of all-strong's resolve rate, e.g. 0.95 or 1.0")
STRONG_SHARE = ValueRule(lambda v: 0 <= v <= 1, "a strong share is between 0 and 1")
COST_WEIGHT = ValueRule(lambda v: math.isfinite(v) and v >= 0, "the cost weight must be >= 0")


def parse_target(text: str, rules: Mapping[K, ValueRule], expected: str) -> Target[K]:
    """`text` as KIND=VALUE with KIND one of `rules`; EvalInputError (naming the flag) otherwise.
    `expected` says what the command takes, for the message when KIND is not one of them."""
    return Target(*parse_setting(text, rules, expected, "--target"))
