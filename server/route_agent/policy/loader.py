"""Read policy YAML safely and turn every problem into `FILE:LINE:COL: message`.

Safety rules (see safety.md): files over 64 KB are refused before parsing; aliases are refused (an
alias bomb composes cheaply and then explodes when serialised); only the plain YAML core tags are
accepted, so `!!python/object` and custom tags never reach a constructor; duplicate keys are errors.
The C loader is used when PyYAML was built with it.

Layers (shipped default, user policy, repository policy or `--policy`) are merged key by key:
mappings merge, lists and scalars of a later layer replace the earlier value. Each value remembers
the file and position it came from, so a validation error points at the line the user wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from route_agent.policy.models import Policy

MAX_POLICY_BYTES = 64 * 1024

try:  # pragma: no cover - depends on how PyYAML was built
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_CORE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class PolicyIssue:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyError(Exception):
    """One or more problems in policy files, each with a file, line and column."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass
class Layer:
    """One parsed policy file: its data and where each value came from (1-based)."""

    path: str
    data: dict[str, Any]
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def parse_layer(text: str, path: str) -> Layer:
    """Parse YAML text into a layer; raises PolicyError naming the line of the first problem."""
    size = len(text.encode("utf-8", errors="surrogateescape"))
    if size > MAX_POLICY_BYTES:
        raise PolicyError([PolicyIssue(path, 1, 1, f"policy file is {size} bytes; the limit is {MAX_POLICY_BYTES} bytes (64 KB)")])
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PolicyError([PolicyIssue(path, line, col, f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([PolicyIssue(path, 1, 1, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    layer = Layer(path=path, data={})
    if root is None:
        return layer
    seen: set[int] = set()
    value = _build(root, (), layer, seen, loader)
    if not isinstance(value, dict):
        line, col = root.start_mark.line + 1, root.start_mark.column + 1
        raise PolicyError([PolicyIssue(path, line, col, "a policy must be a mapping of keys (models, routing, ...)")])
    layer.data = value
    return layer


def _build(node: yaml.Node, loc: Loc, layer: Layer, seen: set[int], loader: Any) -> Any:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if id(node) in seen:
        raise PolicyError([PolicyIssue(layer.path, line, col, "YAML aliases (*name) are not allowed in a policy; write the value out")])
    seen.add(id(node))
    if node.tag not in _CORE_TAGS:
        raise PolicyError([PolicyIssue(layer.path, line, col, f"YAML tag {_tag_name(node.tag)!r} is not allowed in a policy; remove it")])
    layer.positions.setdefault(loc, (line, col))
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            kline, kcol = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicyError([PolicyIssue(layer.path, kline, kcol, "YAML merge keys (<<) are not allowed in a policy")])
            key = _build(key_node, (*loc, "<key>"), layer, seen, loader)
            if not isinstance(key, str):
                raise PolicyError([PolicyIssue(layer.path, kline, kcol, f"keys must be strings, got {key!r}")])
            if key in out:
                raise PolicyError([PolicyIssue(layer.path, kline, kcol, f"duplicate key {key!r}")])
            out[key] = _build(value_node, (*loc, key), layer, seen, loader)
            # An error about a scalar points at the value; about a collection, at its key.
            if isinstance(value_node, yaml.ScalarNode):
                vmark = value_node.start_mark
                layer.positions[(*loc, key)] = (vmark.line + 1, vmark.column + 1)
            else:
                layer.positions[(*loc, key)] = (kline, kcol)
        layer.positions.pop((*loc, "<key>"), None)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            items.append(_build(item, (*loc, index), layer, seen, loader))
        return items
    return loader.construct_object(node, deep=True)


def read_layer(path: Path) -> Layer:
    """Read a policy file from disk (bounded) and parse it."""
    shown = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise PolicyError([PolicyIssue(shown, 1, 1, "policy file not found")]) from None
    except IsADirectoryError:
        raise PolicyError([PolicyIssue(shown, 1, 1, "policy path is a directory, not a file")]) from None
    except OSError as exc:
        raise PolicyError([PolicyIssue(shown, 1, 1, f"cannot read policy file: {exc.strerror}")]) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError([PolicyIssue(shown, 1, 1, f"policy file is over {MAX_POLICY_BYTES} bytes (64 KB); keep policies small")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyError([PolicyIssue(shown, line, 1, "policy file is not valid UTF-8")]) from None
    return parse_layer(text, shown)


@dataclass
class Merged:
    data: dict[str, Any]
    origin: dict[Loc, tuple[str, int, int]]


def merge_layers(layers: Iterable[Layer]) -> Merged:
    data: dict[str, Any] = {}
    origin: dict[Loc, tuple[str, int, int]] = {}
    for layer in layers:
        _merge_into(data, layer.data, (), layer, origin)
    return Merged(data, origin)


def _merge_into(dst: dict[str, Any], src: dict[str, Any], loc: Loc, layer: Layer, origin: dict[Loc, tuple[str, int, int]]) -> None:
    for key, value in src.items():
        here = (*loc, key)
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge_into(dst[key], value, here, layer, origin)
        else:
            for old in [k for k in origin if k[: len(here)] == here]:
                del origin[old]
            dst[key] = _copy(value)
            for sub, (line, col) in layer.positions.items():
                if sub[: len(here)] == here:
                    origin[sub] = (layer.path, line, col)
        if here not in origin and here in layer.positions:
            line, col = layer.positions[here]
            origin[here] = (layer.path, line, col)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def validate(merged: Merged, fallback_file: str) -> Policy:
    try:
        return Policy.model_validate(merged.data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc: Loc = tuple(err["loc"])
            where = _locate(loc, merged.origin, fallback_file)
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = f"unknown key {dotted!r}; check the spelling against `route-agent policy schema`"
            elif err["type"] == "missing":
                message = f"missing required key {dotted!r}"
            else:
                message = f"{dotted}: {message.removeprefix('Value error, ')}"
            issues.append(PolicyIssue(where[0], where[1], where[2], message))
        raise PolicyError(issues) from None


def _locate(loc: Loc, origin: dict[Loc, tuple[str, int, int]], fallback_file: str) -> tuple[str, int, int]:
    # pydantic may add union branch names to a loc; walk up to the nearest known position.
    probe = loc
    while probe:
        if probe in origin:
            return origin[probe]
        probe = probe[:-1]
    return (fallback_file, 1, 1)


def file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
