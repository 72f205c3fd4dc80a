"""Policy: the routing rules users keep apart from prompts.

`load_policy` layers the shipped default, the user's policy and the repository's (or an explicit
`--policy` file) and validates the result; parsed layers are cached by file identity so a policy is
re-read only when it changes.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from route_agent.policy.floor import FLOOR_CONDITIONS, FLOOR_GLOBS, FLOOR_REASONS
from route_agent.policy.loader import (
    MAX_POLICY_BYTES,
    Layer,
    PolicyError,
    PolicyIssue,
    file_identity,
    merge_layers,
    parse_layer,
    read_layer,
    validate,
)
from route_agent.policy.models import Check, ModelSpec, Policy
from route_agent.policy.toolchain import detect_checks, facts_identity, read_repo_facts

__all__ = [
    "FLOOR_CONDITIONS",
    "FLOOR_GLOBS",
    "FLOOR_REASONS",
    "MAX_POLICY_BYTES",
    "REPO_POLICY_PATHS",
    "Check",
    "LoadedPolicy",
    "ModelSpec",
    "Policy",
    "PolicyCache",
    "PolicyError",
    "PolicyIssue",
    "check_policy_file",
    "default_policy_text",
    "effective_always_strong",
    "policy_json_schema",
]

DEFAULT_POLICY_NAME = "<built-in default.yaml>"
REPO_POLICY_PATHS = (".route-agent/policy.yaml", ".route-agent.yaml")


def default_policy_text() -> str:
    return resources.files("route_agent").joinpath("data/default.yaml").read_text("utf-8")


@functools.cache
def _default_layer() -> Layer:
    # The shipped default never changes while the process runs: parse it once per process.
    return parse_layer(default_policy_text(), DEFAULT_POLICY_NAME)


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    sources: tuple[str, ...]
    warnings: tuple[PolicyIssue, ...] = ()
    """Settings of the repository's policy that were ignored because they lower a protection."""

    @property
    def always_strong_conditions(self) -> tuple[str, ...]:
        return effective_always_strong(self.policy)


def effective_always_strong(policy: Policy) -> tuple[str, ...]:
    extra = [c for c in policy.routing.always_strong_if if c not in FLOOR_CONDITIONS]
    return (*FLOOR_CONDITIONS, *extra)


class PolicyCache:
    """Parsed layers keyed by path and file identity (mtime, size, inode)."""

    def __init__(self) -> None:
        self._layers: dict[str, tuple[tuple[int, int, int] | None, Layer]] = {}
        self._default: Layer | None = None
        self._validated: dict[tuple[Any, ...], LoadedPolicy] = {}
        self._restricted: tuple[LoadedPolicy, LoadedPolicy, LoadedPolicy] | None = None
        self._detected: dict[str, tuple[tuple[Any, ...], Layer]] = {}

    def default_layer(self) -> Layer:
        if self._default is None:
            self._default = _default_layer()
        return self._default

    def layer(self, path: Path) -> Layer:
        key = str(path)
        ident = file_identity(path)
        cached = self._layers.get(key)
        if cached is not None and ident is not None and cached[0] == ident:
            return cached[1]
        layer = read_layer(path)
        self._layers[key] = (ident, layer)
        return layer

    def detected_layer(self, root: Path) -> Layer:
        """The checks detected in `root` (toolchain.py) as a layer over the default; re-read when a probed file changes."""
        ident = facts_identity(root)
        cached = self._detected.get(str(root))
        if cached is not None and cached[0] == ident:
            return cached[1]
        detected = detect_checks(read_repo_facts(root))
        layer = Layer(path=f"<detected checks: {', '.join(detected.toolchains) or 'none found'}>", data=detected.policy_data())
        self._detected[str(root)] = (ident, layer)
        return layer

    def load(self, *paths: Path, detected: Layer | None = None) -> LoadedPolicy:
        """Validate the default (then `detected`) layered with `paths` (in order); cached until a file changes."""
        idents = tuple((str(p), file_identity(p)) for p in paths)
        key = (json.dumps(detected.data, sort_keys=True) if detected is not None else None, *idents)
        hit = self._validated.get(key)
        if hit is not None and all(ident is not None for _, ident in idents):
            return hit
        layers = [self.default_layer(), *([detected] if detected is not None else []), *(self.layer(p) for p in paths)]
        merged = merge_layers(layers)
        policy = validate(merged, str(paths[-1]) if paths else DEFAULT_POLICY_NAME)
        if policy.routing.learned is not None:
            _check_predictor(policy.routing.learned.predictor, merged.origin.get(("routing", "learned", "predictor")))
        loaded = LoadedPolicy(policy=policy, sources=tuple(layer.path for layer in layers))
        self._validated[key] = loaded
        return loaded

    def for_workspace(self, root: Path | None, explicit: Path | None = None, user: Path | None = None) -> LoadedPolicy:
        """The effective policy: default, then the checks detected in `root` (toolchain.py), then the
        user's file, then `explicit` or the repository's. A `verification:` section in any of the files
        replaces the detected checks.

        The repository's policy may only make things stricter: what it lowers is ignored and listed
        in `warnings` (strictness.py). `explicit` and the user's file are the user's own."""
        detected = self.detected_layer(root) if root is not None else None
        paths: list[Path] = []
        if user is not None and user.is_file():
            paths.append(user)
        if explicit is not None:
            paths.append(explicit)
        elif root is not None:
            for rel in REPO_POLICY_PATHS:
                candidate = root / rel
                if candidate.is_file():
                    return self._restricted_load(paths, candidate, detected)
        return self.load(*paths, detected=detected)

    def _restricted_load(self, trusted_paths: list[Path], repo_path: Path, detected: Layer | None) -> LoadedPolicy:
        from route_agent.policy.strictness import lowered_issues, restrict

        full = self.load(*trusted_paths, repo_path, detected=detected)
        trusted = self.load(*trusted_paths, detected=detected)
        last = self._restricted
        if last is not None and last[0] is full and last[1] is trusted:
            return last[2]  # the same object while nothing changed: the LSP reuses its router
        policy, lowered = restrict(trusted.policy, full.policy)
        loaded = full
        if lowered:
            loaded = LoadedPolicy(policy, full.sources, tuple(lowered_issues(lowered, self.layer(repo_path))))
        self._restricted = (full, trusted, loaded)
        return loaded


def _check_predictor(path: str, origin: tuple[str, int, int] | None) -> None:
    """A policy that names a predictor is valid only if the predictor reads (at the key's line)."""
    from route_agent.policy.predictor import PredictorError, load_predictor

    try:
        load_predictor(path)
    except PredictorError as exc:
        file, line, column = origin or (path, 1, 1)
        raise PolicyError([PolicyIssue(file, line, column, f"routing.learned.predictor: {exc}")]) from None


def check_policy_file(path: Path) -> LoadedPolicy:
    """Validate one file layered over the shipped default, as it would be used."""
    return PolicyCache().load(path)


def policy_json_schema() -> str:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "route-agent policy"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
