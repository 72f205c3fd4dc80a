"""KEY=NUMBER options: `--target` for `policy calibrate` and `policy learn` (each with its kinds) and
`--price`, one parser."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from route_agent.eval.calibrate import Target, parse_target
from route_agent.eval.data import EvalInputError, Prices, parse_prices
from route_agent.eval.learn import LearnTarget, parse_learn_target


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("quality=0.95", Target("quality", 0.95), id="quality"),
    pytest.param(" strong-share =0.3", Target("strong-share", 0.3), id="strong-share-spaced-key"),
    pytest.param("strong-share=0", Target("strong-share", 0.0), id="strong-share-zero"),
    pytest.param("quality=2", Target("quality", 2.0), id="quality-upper-bound"),
])
def test_calibrate_targets(text: str, expected: Target) -> None:
    assert parse_target(text) == expected
    assert str(parse_target(text)) == f"{expected.kind}={expected.value:g}"


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("quality=1.0", LearnTarget("quality", 1.0), id="quality"),
    pytest.param("cost-weight=0.3", LearnTarget("cost-weight", 0.3), id="cost-weight"),
    pytest.param("cost-weight=0", LearnTarget("cost-weight", 0.0), id="cost-weight-zero"),
])
def test_learn_targets(text: str, expected: LearnTarget) -> None:
    assert parse_learn_target(text) == expected


@pytest.mark.parametrize(("parse", "text", "message"), [
    pytest.param(parse_target, "quality", "--target 'quality': expected strong-share=S or quality=Q (for example quality=1.0)",
                 id="calibrate-no-value"),
    pytest.param(parse_target, "cost-weight=1", "--target 'cost-weight=1': expected strong-share=S or quality=Q",
                 id="calibrate-learn-only-kind"),
    pytest.param(parse_target, "quality=x", "--target 'quality=x': 'x' is not a number", id="calibrate-not-a-number"),
    pytest.param(parse_target, "strong-share=2", "--target 'strong-share=2': a strong share is between 0 and 1",
                 id="calibrate-share-above-one"),
    pytest.param(parse_target, "quality=0", "--target 'quality=0': quality is a fraction of all-strong's resolve rate",
                 id="calibrate-quality-zero"),
    pytest.param(parse_target, "quality=nan", "--target 'quality=nan': quality is a fraction", id="calibrate-quality-nan"),
    pytest.param(parse_learn_target, "strong-share=0.3", "--target 'strong-share=0.3': expected quality=Q (fraction of all-strong's "
                 "resolve rate, e.g. 1.0) or cost-weight=W (resolve rate given up per strong attempt saved, e.g. 0.3)",
                 id="learn-calibrate-only-kind"),
    pytest.param(parse_learn_target, "cost-weight=-1", "--target 'cost-weight=-1': the cost weight must be >= 0", id="learn-negative-weight"),
    pytest.param(parse_learn_target, f"cost-weight={math.inf}", "--target 'cost-weight=inf': the cost weight must be >= 0",
                 id="learn-infinite-weight"),
    pytest.param(parse_learn_target, "quality=3", "--target 'quality=3': quality is a fraction of all-strong's resolve rate",
                 id="learn-quality-above-two"),
])
def test_target_refusals(parse: Callable[[str], object], text: str, message: str) -> None:
    with pytest.raises(EvalInputError) as raised:
        parse(text)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("fast=0.8", "--price 'fast=0.8': give both lanes, fast=X,strong=Y", id="one-lane"),
    pytest.param("fast=0.8,slow=3", "--price 'fast=0.8,slow=3': expected fast=X,strong=Y (for example fast=0.8,strong=3)", id="unknown-lane"),
    pytest.param("fast=cheap,strong=3", "--price 'fast=cheap,strong=3': 'cheap' is not a number", id="not-a-number"),
    pytest.param("fast=-1,strong=3", "--price 'fast=-1,strong=3': prices must be finite and >= 0", id="negative"),
    pytest.param("fast=1,strong=inf", "--price 'fast=1,strong=inf': prices must be finite and >= 0", id="infinite"),
    pytest.param("fast=1,strong=0", "--price 'fast=1,strong=0': the strong lane's price must be > 0", id="free-strong"),
])
def test_price_refusals(text: str, message: str) -> None:
    with pytest.raises(EvalInputError) as raised:
        parse_prices(text)
    assert str(raised.value) == message


def test_prices() -> None:
    assert parse_prices(" strong = 3 , fast=0") == Prices(0.0, 3.0)
