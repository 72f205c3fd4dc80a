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

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from route_agent.policy.models import Policy

MAX_POLICY_BYTES = 64 * 1024
MAX_POLICY_INT = 2**63 - 1

try:  # pragma: no cover - depends on how PyYAML was built
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_YAML_TAG = "tag:yaml.org,2002:"
_CORE_TAGS = {
    _YAML_TAG + name for name in ("str", "int", "float", "bool", "null", "map", "seq")
}
_TIMESTAMP_TAG = _YAML_TAG + "timestamp"

Loc = tuple[str | int, ...]
Position = tuple[int, int]
"""1-based (line, column)."""


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
    """One parsed policy file: its data and where each value came from."""

    path: str
    data: dict[str, Any]
    positions: dict[Loc, Position] = field(default_factory=dict)
    """Where an error about the value at a loc points: a scalar's value, a collection's key."""
    key_positions: dict[Loc, Position] = field(default_factory=dict)
    """Where the key that names a loc was written (for "unknown key" errors)."""


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag


def _issue(path: str, mark: yaml.Mark | None, message: str) -> PolicyError:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return PolicyError([PolicyIssue(path, line, col, message)])


def parse_layer(text: str, path: str) -> Layer:
    """Parse YAML text into a layer; raises PolicyError naming the line of the first problem."""
    size = len(text.encode("utf-8", errors="surrogateescape"))
    if size > MAX_POLICY_BYTES:
        message = f"policy file is {size} bytes; the limit is {MAX_POLICY_BYTES} bytes (64 KB)"
        raise PolicyError([PolicyIssue(path, 1, 1, message)])
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _issue(path, mark, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise PolicyError([PolicyIssue(path, 1, 1, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    layer = Layer(path=path, data={})
    if root is None:
        return layer
    builder = _Builder(text, layer, loader)
    value = builder.build(root, ())
    if not isinstance(value, dict):
        raise _issue(path, root.start_mark, "a policy must be a mapping of keys (models, routing, ...)")
    layer.data = value
    return layer


class _Builder:
    """Turns a composed node tree into plain data, refusing aliases and non-core tags."""

    def __init__(self, text: str, layer: Layer, loader: Any) -> None:
        self.text = text
        self.layer = layer
        self.loader = loader
        self.seen: set[int] = set()

    def fail(self, mark: yaml.Mark | None, message: str) -> PolicyError:
        return _issue(self.layer.path, mark, message)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        # The composer hands back the anchored node itself for every `*alias`: a node seen twice is
        # an alias. Its own position is gone by then, so find the first alias in the event stream.
        if id(node) in self.seen:
            raise self.fail(self._first_alias_mark() or node.start_mark,
                            "YAML aliases (*name) are not allowed in a policy; write the value out")
        self.seen.add(id(node))
        if node.tag not in _CORE_TAGS:
            explicit = self.text.startswith("!", node.start_mark.index)
            if node.tag == _TIMESTAMP_TAG and not explicit and isinstance(node, yaml.ScalarNode):
                return node.value  # an unquoted date is text to us, not a timestamp
            raise self.fail(node.start_mark,
                            f"YAML tag {_tag_name(node.tag)!r} is not allowed in a policy; remove it")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                here = (*loc, index)
                self.layer.positions[here] = _pos(item.start_mark)
                items.append(self.build(item, here))
            return items
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.Node, loc: Loc) -> Any:
        """A scalar's value; a number no policy key can hold (over 64 bits, infinite, not a number,
        or too long for Python to convert) is a FILE:LINE:COL error, never a traceback."""
        where = ".".join(str(p) for p in loc if p != "<key>") or "(top level)"
        shown = node.value if len(node.value) <= 24 else f"{node.value[:12]}...({len(node.value)} characters)"
        try:
            value = self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError, ArithmeticError) as exc:
            raise self.fail(node.start_mark, f"{where}: {shown} cannot be read as a {_tag_name(node.tag)[2:]} "
                                             f"({exc.__class__.__name__}); write a smaller number") from None
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_POLICY_INT <= value <= MAX_POLICY_INT:
            raise self.fail(node.start_mark, f"{where}: {shown} is out of range; numbers in a policy are at most "
                                             f"{MAX_POLICY_INT:,} in size")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node.start_mark, f"{where}: {shown} is not a finite number; write a number")
        return value

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _YAML_TAG + "merge":
                raise self.fail(key_node.start_mark, "YAML merge keys (<<) are not allowed in a policy")
            key = self.build(key_node, (*loc, "<key>"))
            if not isinstance(key, str):
                raise self.fail(key_node.start_mark, f"keys must be strings, got {key!r}")
            if key in out:
                raise self.fail(key_node.start_mark, f"duplicate key {key!r}")
            here = (*loc, key)
            self.layer.key_positions[here] = _pos(key_node.start_mark)
            # An error about a scalar points at the value; about a collection, at its key.
            scalar = isinstance(value_node, yaml.ScalarNode)
            self.layer.positions[here] = _pos(value_node.start_mark if scalar else key_node.start_mark)
            out[key] = self.build(value_node, here)
        return out

    def _first_alias_mark(self) -> Any:  # a yaml.Mark (pure or C loader), or None
        try:
            for event in yaml.parse(self.text, Loader=_Loader):
                if isinstance(event, yaml.AliasEvent):
                    return event.start_mark
        except yaml.YAMLError:  # pragma: no cover - the text composed once already
            return None
        return None  # pragma: no cover


def _pos(mark: yaml.Mark) -> Position:
    return (mark.line + 1, mark.column + 1)


def read_layer(path: Path) -> Layer:
    """Read a policy file from disk (bounded) and parse it."""
    shown = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise PolicyError([PolicyIssue(shown, 1, 1, "policy file not found")]) from None
    except IsADirectoryError:
        message = "policy path is a directory, not a file"
        raise PolicyError([PolicyIssue(shown, 1, 1, message)]) from None
    except OSError as exc:
        message = f"cannot read policy file: {exc.strerror}"
        raise PolicyError([PolicyIssue(shown, 1, 1, message)]) from None
    if len(raw) > MAX_POLICY_BYTES:
        message = f"policy file is over {MAX_POLICY_BYTES} bytes (64 KB); keep policies small"
        raise PolicyError([PolicyIssue(shown, 1, 1, message)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - line_start + 1
        message = f"policy file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})"
        raise PolicyError([PolicyIssue(shown, line, column, message)]) from None
    layer = parse_layer(text, shown)
    _anchor_predictor(layer, path)
    return layer


def _anchor_predictor(layer: Layer, path: Path) -> None:
    """`routing.learned.predictor` is relative to the policy file that names it: make it absolute."""
    routing = layer.data.get("routing")
    learned = routing.get("learned") if isinstance(routing, dict) else None
    if not isinstance(learned, dict):
        return
    predictor = learned.get("predictor")
    if isinstance(predictor, str) and predictor and not Path(predictor).expanduser().is_absolute():
        learned["predictor"] = str(path.absolute().parent / predictor)


Origin = tuple[str, int, int]


@dataclass
class Merged:
    data: dict[str, Any]
    origin: dict[Loc, Origin]
    """Where an error about a loc points (the layer that set the value last)."""
    key_origin: dict[Loc, Origin] = field(default_factory=dict)
    """Where the key naming a loc was written last."""
    rank: dict[str, int] = field(default_factory=dict)
    """Layer order by file: higher is later (wins)."""


def merge_layers(layers: Iterable[Layer]) -> Merged:
    merged = Merged({}, {})
    for index, layer in enumerate(layers):
        merged.rank[layer.path] = index
        _merge_into(merged.data, layer.data, (), layer, merged)
    return merged


def _merge_into(dst: dict[str, Any], src: dict[str, Any], loc: Loc, layer: Layer,
                merged: Merged) -> None:
    for key, value in src.items():
        here = (*loc, key)
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge_into(dst[key], value, here, layer, merged)
        else:
            # A later layer replaces the whole value: forget where the old parts came from, and
            # take the new parts' positions (walking the values keeps this linear in their size).
            if key in dst:
                for old in _locs(dst[key], here):
                    merged.origin.pop(old, None)
                    merged.key_origin.pop(old, None)
            dst[key] = _copy(value)
            for sub in _locs(value, here):
                if sub in layer.positions:
                    merged.origin[sub] = (layer.path, *layer.positions[sub])
                if sub in layer.key_positions:
                    merged.key_origin[sub] = (layer.path, *layer.key_positions[sub])
        # The latest layer that writes a key owns it, merged mapping or not.
        if here in layer.positions:
            merged.origin[here] = (layer.path, *layer.positions[here])
        if here in layer.key_positions:
            merged.key_origin[here] = (layer.path, *layer.key_positions[here])


def _locs(value: Any, loc: Loc) -> Iterable[Loc]:
    """`loc` and the loc of everything nested in `value`."""
    yield loc
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _locs(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _locs(item, (*loc, index))


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_DOTTED = re.compile(r"\b[a-z_]+(?:\.[a-z_]+)+\b")


def validate(merged: Merged, fallback_file: str) -> Policy:
    try:
        return Policy.model_validate(merged.data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc: Loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                where = _locate(loc, merged.key_origin, fallback_file, merged)
                message = f"unknown key {dotted!r}; check the spelling against `route-agent policy schema`"
            elif err["type"] == "missing":
                where = _locate(loc, merged.origin, fallback_file, merged)
                message = f"missing required key {dotted!r}"
            elif err["type"] == "value_error":
                # A model-level check (thresholds, fallback tiers) names the keys it is about:
                # point at the one the latest layer wrote, so the user sees their own line.
                where = _locate_named(message, loc, merged, fallback_file)
                if f"{dotted}." not in message and not message.startswith(dotted):
                    message = f"{dotted}: {message}"
            else:
                where = _locate(loc, merged.origin, fallback_file, merged)
                message = f"{dotted}: {message}"
            issues.append(PolicyIssue(where[0], where[1], where[2], message))
        raise PolicyError(issues) from None


def _locate(loc: Loc, origin: dict[Loc, Origin], fallback_file: str, merged: Merged) -> Origin:
    # pydantic may add union branch names to a loc; walk up to the nearest known position.
    probe = loc
    while probe:
        if probe in origin:
            return origin[probe]
        if probe in merged.origin:
            return merged.origin[probe]
        probe = probe[:-1]
    return (fallback_file, 1, 1)


def _locate_named(message: str, loc: Loc, merged: Merged, fallback_file: str) -> Origin:
    candidates: list[Origin] = []
    for name in _DOTTED.findall(message):
        named: Loc = tuple(name.split("."))
        if named[: len(loc)] == loc and named in merged.origin:
            candidates.append(merged.origin[named])
    if candidates:
        # The latest layer wins; within it, the first key the message names.
        best = max(range(len(candidates)),
                   key=lambda i: (merged.rank.get(candidates[i][0], -1), -i))
        return candidates[best]
    return _locate(loc, merged.origin, fallback_file, merged)


def file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
