"""The learned predictor file a policy names (`routing.learned.predictor`): its format, reading it,
and the three logistic models it holds.

It lives with the policy because the policy loader checks, at load, that the file it names reads:
a policy naming a broken predictor is a policy error at the key's line. Routing
(`routing/learned.py`) computes the features and chooses the plan from these predictions;
`route-agent policy learn` (eval/learn.py) writes the file. Pure Python, no numpy.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREDICTOR_FORMAT = "route-agent-predictor/1"
MAX_PREDICTOR_BYTES = 2 * 1024 * 1024
TARGETS = ("fast", "strong", "strong_after_fast_failed")


class PredictorError(Exception):
    """The predictor file is missing or malformed; the message names the file and what to do."""


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True)
class LogisticModel:
    """P(y = 1) = sigmoid(intercept + sum coef[f] * (x[f] - mean[f]) / scale[f])."""

    intercept: float
    coef: Mapping[str, float]
    trained_on: int = 0
    positives: int = 0

    def logit(self, features: Mapping[str, float], mean: Mapping[str, float], scale: Mapping[str, float]) -> float:
        total = self.intercept
        for name, weight in self.coef.items():
            total += weight * (features.get(name, 0.0) - mean[name]) / scale[name]
        return total

    def contributions(self, features: Mapping[str, float], mean: Mapping[str, float], scale: Mapping[str, float],
                      top: int = 5) -> list[tuple[str, float]]:
        items = [(n, w * (features.get(n, 0.0) - mean[n]) / scale[n]) for n, w in self.coef.items()]
        items = [i for i in items if abs(i[1]) > 1e-9]
        items.sort(key=lambda kv: -abs(kv[1]))
        return items[:top]


@dataclass(frozen=True)
class Prediction:
    fast: float
    """P(the fast lane's attempt passes verification and resolves the task)."""
    strong: float
    """P(the strong lane resolves it)."""
    strong_after_fast_failed: float
    """P(the strong lane resolves it | the fast lane failed)."""

    def as_dict(self) -> dict[str, float]:
        return {"fast": round(self.fast, 4), "strong": round(self.strong, 4),
                "strong_after_fast_failed": round(self.strong_after_fast_failed, 4)}


@dataclass(frozen=True)
class Predictor:
    features: tuple[str, ...]
    mean: Mapping[str, float]
    scale: Mapping[str, float]
    models: Mapping[str, LogisticModel]
    cost: Mapping[str, float]
    """Typical cost of one attempt per lane in the training data (`fast`, `strong`)."""
    meta: Mapping[str, Any]

    def predict(self, features: Mapping[str, float]) -> Prediction:
        p = {t: _sigmoid(self.models[t].logit(features, self.mean, self.scale)) for t in TARGETS}
        return Prediction(p["fast"], p["strong"], p["strong_after_fast_failed"])

    @property
    def cost_ratio(self) -> float:
        strong = self.cost.get("strong", 0.0)
        return self.cost.get("fast", 0.0) / strong if strong > 0 else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": PREDICTOR_FORMAT,
            "features": list(self.features),
            "mean": {k: self.mean[k] for k in self.features},
            "scale": {k: self.scale[k] for k in self.features},
            "models": {t: {"intercept": m.intercept, "coef": {k: m.coef[k] for k in self.features if k in m.coef},
                           "trained_on": m.trained_on, "positives": m.positives} for t, m in self.models.items()},
            "cost": dict(self.cost),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "predictor") -> Predictor:
        def bad(message: str) -> PredictorError:
            return PredictorError(f"{where}: {message} (regenerate it with `route-agent policy learn --out POLICY.yaml`)")

        if not isinstance(data, dict) or data.get("format") != PREDICTOR_FORMAT:
            raise bad(f"not a route-agent predictor (expected \"format\": \"{PREDICTOR_FORMAT}\")")
        try:
            features = tuple(str(f) for f in data["features"])
            mean = {f: float(data["mean"][f]) for f in features}
            scale = {f: float(data["scale"][f]) for f in features}
            models: dict[str, LogisticModel] = {}
            for target in TARGETS:
                raw = data["models"][target]
                coef = {str(k): float(v) for k, v in raw["coef"].items()}
                unknown = [k for k in coef if k not in mean]
                if unknown:
                    raise bad(f"model {target!r} has coefficients for unlisted features: {', '.join(unknown[:5])}")
                models[target] = LogisticModel(float(raw["intercept"]), coef, int(raw.get("trained_on", 0)),
                                               int(raw.get("positives", 0)))
            cost = {lane: float(data["cost"][lane]) for lane in ("fast", "strong")}
            meta = dict(data.get("meta") or {})
        except PredictorError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise bad(f"missing or malformed field ({type(exc).__name__}: {exc})") from None
        values = [*mean.values(), *scale.values(), *cost.values(),
                  *(v for m in models.values() for v in (m.intercept, *m.coef.values()))]
        if not all(math.isfinite(v) for v in values) or any(s <= 0 for s in scale.values()):
            raise bad("non-finite numbers or a non-positive scale")
        return cls(features, mean, scale, models, cost, meta)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, identity: tuple[int, int, int]) -> Predictor:
    raw = Path(path).read_bytes()
    if len(raw) > MAX_PREDICTOR_BYTES:
        raise PredictorError(f"{path}: over {MAX_PREDICTOR_BYTES // (1024 * 1024)} MB; not a predictor this tool wrote")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictorError(f"{path}: not valid JSON ({exc}); regenerate it with `route-agent policy learn`") from None
    return Predictor.from_dict(data, path)


def load_predictor(path: str | Path) -> Predictor:
    """Read a predictor JSON file (cached until the file changes)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise PredictorError(f"{p}: cannot read the predictor named by routing.learned.predictor ({exc.strerror})") from None
    return _load_cached(str(p), (st.st_mtime_ns, st.st_size, st.st_ino))
