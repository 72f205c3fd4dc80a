"""Text edits to a repository policy that keep the user's comments and layout.

`add_path_rule_insertion` finds where a glob goes under `paths.<signal>` using YAML node marks and
returns one insertion; the rest of the file is left byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

from route_agent.policy import MAX_POLICY_BYTES


@dataclass(frozen=True, slots=True)
class Insertion:
    line: int
    """0-based line to insert at (column 0), or the line holding a flow list's closing bracket."""
    column: int
    text: str


def new_policy_text(signal: str, glob: str) -> str:
    return f"# route-agent policy for this repository (layered over the default)\npaths:\n  {signal}:\n    - {json.dumps(glob)}\n"


def add_path_rule_insertion(text: str, signal: str, glob: str) -> Insertion | None:
    """Where to insert `glob` under `paths.<signal>`; None when it is already there."""
    if len(text.encode("utf-8", "replace")) > MAX_POLICY_BYTES:
        raise ValueError("the policy file is over 64 KB")
    quoted = json.dumps(glob)
    lines = text.splitlines()
    end_line = len(lines)
    needs_newline = bool(text) and not text.endswith("\n")
    prefix = "\n" if needs_newline else ""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    if not isinstance(root, yaml.MappingNode):
        return Insertion(end_line, 0, f"{prefix}paths:\n  {signal}:\n    - {quoted}\n")
    paths = _value(root, "paths")
    if not isinstance(paths, yaml.MappingNode):
        if paths is not None:
            return None  # `paths` is something else; leave it to the user
        return Insertion(end_line, 0, f"{prefix}paths:\n  {signal}:\n    - {quoted}\n")
    rules = _value(paths, signal)
    key_indent = _key_column(paths)
    if rules is None or (isinstance(rules, yaml.ScalarNode) and rules.value in ("", "~", "null")):
        at = paths.end_mark.line if paths.end_mark.column == 0 else paths.end_mark.line + 1
        if rules is not None:
            key = _key_node(paths, signal)
            assert key is not None
            at = key.start_mark.line
            return Insertion(at, 0, " " * key_indent + f"{signal}:\n" + " " * (key_indent + 2) + f"- {quoted}\n")
        return Insertion(min(at, end_line), 0, " " * key_indent + f"{signal}:\n" + " " * (key_indent + 2) + f"- {quoted}\n")
    if not isinstance(rules, yaml.SequenceNode):
        return None
    if any(isinstance(item, yaml.ScalarNode) and item.value == glob for item in rules.value):
        return None
    if rules.flow_style:
        close_line, close_col = rules.end_mark.line, rules.end_mark.column - 1
        sep = ", " if rules.value else ""
        return Insertion(close_line, close_col, f"{sep}{quoted}")
    first = rules.value[0] if rules.value else None
    indent = first.start_mark.column - 2 if first is not None else key_indent + 2
    tail = rules.value[-1].end_mark if rules.value else rules.end_mark
    last_line = tail.line + 1
    return Insertion(min(last_line, end_line), 0, f"{prefix if last_line >= end_line else ''}" + " " * max(indent, 0) + f"- {quoted}\n")


def apply_insertion(text: str, insertion: Insertion) -> str:
    lines = text.splitlines(keepends=True)
    offset = sum(len(line) for line in lines[: insertion.line]) + insertion.column
    return text[:offset] + insertion.text + text[offset:]


def _key_node(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, _ in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k
    return None


def _value(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            node: yaml.Node = v
            return node
    return None


def _key_column(mapping: yaml.MappingNode) -> int:
    if mapping.value:
        return int(mapping.value[0][0].start_mark.column)
    return 2
