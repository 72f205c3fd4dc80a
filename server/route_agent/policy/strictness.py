"""A repository's policy may only make things stricter (issue 12, item 2).

A policy file inside a repository is someone else's text. It may raise risk (weights, thresholds,
always-strong conditions, path globs, custom rules) and add checks (which go through command
approval), but every setting that would lower a protection the user's own layers give (the sandbox,
budgets, prices, escalation, the verifier, thresholds, weights, limits) is ignored: the trusted
value is kept and a warning names the key and the file (`FILE:LINE:COL`).

`restrict` compares the effective policy without the repository's layer (the shipped default and the
user's own policy) with the one that includes it; everything that differs came from the repository.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from route_agent.policy.loader import Layer, PolicyIssue
from route_agent.policy.models import Policy

__all__ = ["Lowered", "lowered_issues", "restrict"]

_SANDBOX_ORDER = {"off": 0, "auto": 1, "required": 2}
_LANE_ORDER = {"fast": 0, "strong": 1}
# Path classes whose globs raise risk or detect tampering: removing one lowers a protection.
_RAISING_PATHS = ("schema_change", "auth_code", "secrets_handling", "ci_config", "deploy_config",
                  "dependency_manifest", "sensitive", "tests", "snapshots")
# Path classes whose globs lower risk (a docs file is never new code): adding one lowers a protection.
_LOWERING_PATHS = ("docs",)


@dataclass(frozen=True)
class Lowered:
    """One setting of the repository's policy that was ignored because it lowers a protection."""

    key: str
    """Dotted key, e.g. `verification.sandbox`."""
    proposed: Any
    kept: Any


def _at_least(kept: Any, proposed: Any) -> Any:
    return kept if proposed < kept else proposed


def _at_most(kept: Any, proposed: Any) -> Any:
    return kept if proposed > kept else proposed


def _limit(kept: Any, proposed: Any) -> Any:
    """A limit where None means unlimited: the smaller one wins."""
    if kept is None:
        return proposed
    if proposed is None:
        return kept
    return _at_most(kept, proposed)


def _ordered(order: dict[str, int]) -> Callable[[Any, Any], Any]:
    return lambda kept, proposed: kept if order[proposed] < order[kept] else proposed


def _superset(kept: list[Any], proposed: list[Any]) -> list[Any]:
    return proposed + [item for item in kept if item not in proposed] if not set(kept) <= set(proposed) else proposed


def _subset(kept: list[Any], proposed: list[Any]) -> list[Any]:
    return [item for item in proposed if item in kept]


_SCALARS: dict[tuple[str, ...], Callable[[Any, Any], Any]] = {
    ("routing", "fast_max_score"): _at_most,
    ("routing", "strong_min_score"): _at_most,
    ("routing", "between"): _ordered(_LANE_ORDER),
    ("routing", "always_strong_if"): _superset,
    ("routing", "escalate_on"): _superset,
    ("routing", "confidence_threshold"): _at_least,
    ("routing", "max_attempts"): _at_least,
    ("routing", "skip_fast_when_it_cannot_pay"): _at_least,
    ("routing", "plan"): _ordered({"fast-only": 0, "auto": 1, "strong-only": 2}),
    # A learned plan may stop after a failed fast attempt instead of escalating: only your own
    # policy (or --policy) may choose one.
    ("routing", "learned"): lambda kept, proposed: kept,
    ("budgets", "per_task_usd"): _limit,
    ("budgets", "per_day_usd"): _limit,
    ("verification", "sandbox"): _ordered(_SANDBOX_ORDER),
    ("verification", "run_timeout_s"): _at_most,
    ("verification", "max_output_bytes"): _at_most,
    ("verification", "max_patch_files"): _at_most,
    ("verification", "max_patch_bytes"): _at_most,
    ("verifier", "lanes"): _superset,
    # The built-in agent loop's limits, and the opt-out of its sandbox (True lowers a protection).
    ("agent", "max_steps"): _at_most,
    ("agent", "command_timeout_s"): _at_most,
    ("agent", "output_limit_bytes"): _at_most,
    ("agent", "wall_timeout_s"): _at_most,
    ("agent", "allow_unsandboxed"): _at_most,
    # Disk: a repository may keep fewer reused worktrees, or for less time, never more.
    ("worktrees", "pool_size"): _at_most,
    ("worktrees", "idle_days"): _at_most,
    **{("paths", name): _superset for name in _RAISING_PATHS},
    **{("paths", name): _subset for name in _LOWERING_PATHS},
}


class _Restrictor:
    def __init__(self) -> None:
        self.lowered: list[Lowered] = []

    def settle(self, kept_root: dict[str, Any], proposed_root: dict[str, Any], loc: tuple[str, ...],
               rule: Callable[[Any, Any], Any]) -> None:
        kept, proposed = _get(kept_root, loc), _get(proposed_root, loc)
        if kept == proposed:
            return
        value = rule(kept, proposed)
        if value != proposed:
            self.lowered.append(Lowered(".".join(loc), proposed, kept))
            _set(proposed_root, loc, value)

    def model(self, kept: dict[str, Any] | None, proposed: dict[str, Any], loc: tuple[str, ...]) -> None:
        if kept is None:
            return
        for key in ("max_context_tokens", "max_output_tokens"):
            if proposed.get(key, 0) > kept.get(key, 0):
                self.lowered.append(Lowered(".".join((*loc, key)), proposed[key], kept[key]))
                proposed[key] = kept[key]
        kept_price, price = kept.get("price_per_mtok"), proposed.get("price_per_mtok")
        if kept_price is not None:
            if price is None:
                self.lowered.append(Lowered(".".join((*loc, "price_per_mtok")), None, kept_price))
                proposed["price_per_mtok"] = dict(kept_price)
            else:
                for side in ("input", "output"):
                    if price[side] < kept_price[side]:
                        self.lowered.append(Lowered(".".join((*loc, "price_per_mtok", side)), price[side], kept_price[side]))
                        price[side] = kept_price[side]
        if isinstance(kept.get("fallback"), dict) and isinstance(proposed.get("fallback"), dict):
            self.model(kept["fallback"], proposed["fallback"], (*loc, "fallback"))


def _get(root: dict[str, Any], loc: tuple[str, ...]) -> Any:
    value: Any = root
    for part in loc:
        value = value[part]
    return value


def _set(root: dict[str, Any], loc: tuple[str, ...], value: Any) -> None:
    _get(root, loc[:-1])[loc[-1]] = value


def restrict(trusted: Policy, proposed: Policy) -> tuple[Policy, list[Lowered]]:  # noqa: PLR0912 (one branch per protection a repository policy may not lower)
    """`proposed` (the trusted layers plus the repository's) with every protection the repository
    lowered put back to its `trusted` value, and the list of what was put back."""
    kept = trusted.model_dump()
    out = proposed.model_dump()
    r = _Restrictor()
    for loc, rule in _SCALARS.items():
        r.settle(kept, out, loc, rule)
    # Weights: a lower weight lowers risk.
    for name, value in kept["weights"].items():
        if isinstance(value, dict):
            for part in ("per", "max"):
                r.settle(kept, out, ("weights", name, part), _at_least)
        else:
            r.settle(kept, out, ("weights", name), _at_least)
    # Models: prices (budgets are booked from them) and token limits; the verifier cannot be dropped.
    for role in ("fast", "strong", "verifier"):
        if kept["models"][role] is not None and out["models"][role] is None:
            r.lowered.append(Lowered(f"models.{role}", None, kept["models"][role]["model"]))
            out["models"][role] = kept["models"][role]
        elif out["models"][role] is not None:
            r.model(kept["models"][role], out["models"][role], ("models", role))
    # A lane's own agent limits: none above what the trusted layers give that lane.
    for lane in ("fast", "strong"):
        overrides = out["models"][lane].get("agent")
        if not overrides:
            continue
        kept_lane = kept["models"][lane].get("agent") or {}
        for key, value in list(overrides.items()):
            trusted_value = kept_lane.get(key) if kept_lane.get(key) is not None else kept["agent"][key]
            if value is not None and value > trusted_value:
                r.lowered.append(Lowered(f"models.{lane}.agent.{key}", value, trusted_value))
                overrides[key] = kept_lane.get(key)
    # Checks: a lane's list may be replaced (new commands need approval), never emptied.
    for lane in ("fast", "strong"):
        if kept["verification"][lane] and not out["verification"][lane]:
            r.lowered.append(Lowered(f"verification.{lane}", [], [c["name"] for c in kept["verification"][lane]]))
            out["verification"][lane] = kept["verification"][lane]
    # Custom rules of the user's: kept unless the repository's rule of the same name is at least as strict.
    proposed_rules = {rule["name"]: rule for rule in out["custom_rules"]}
    for index, rule in enumerate(kept["custom_rules"]):
        mine = proposed_rules.get(rule["name"])
        if mine is not None and mine["points"] >= rule["points"] and mine["always_strong"] >= rule["always_strong"] \
                and set(rule["globs"]) <= set(mine["globs"]):
            continue
        r.lowered.append(Lowered(f"custom_rules.{rule['name']}", mine, rule))
        if mine is None:
            out["custom_rules"].insert(min(index, len(out["custom_rules"])), rule)
        else:
            out["custom_rules"][out["custom_rules"].index(mine)] = rule
    if not r.lowered:
        return proposed, []
    return Policy.model_validate(out), r.lowered


def _shown(value: Any) -> str:
    if isinstance(value, dict) and "model" in value and "provider" in value:
        return json.dumps(value["model"])
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def lowered_issues(lowered: list[Lowered], layer: Layer) -> list[PolicyIssue]:
    """Warnings naming each ignored key at the line the repository's policy wrote it."""
    issues = []
    for item in lowered:
        loc: tuple[str | int, ...] = tuple(item.key.split("."))
        if loc[0] == "custom_rules":
            loc = ("custom_rules",)
        probe = loc
        while probe and probe not in layer.key_positions:
            probe = probe[:-1]
        line, column = layer.key_positions.get(probe, (1, 1)) if probe else (1, 1)
        message = (f"{item.key}: {_shown(item.proposed)} ignored, it would lower a protection (kept {_shown(item.kept)}); "
                   "a repository's policy may only make things stricter: set it in your own policy or pass --policy FILE")
        issues.append(PolicyIssue(layer.path, line, column, message))
    return issues
