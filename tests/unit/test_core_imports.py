"""The core (policy, signals, routing) stays plain Python: neither pygls nor httpx is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", [pytest.param(m, id=m) for m in ("route_agent.policy", "route_agent.signals", "route_agent.routing")])
def test_core_does_not_import_pygls_or_httpx(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('pygls', 'httpx', 'lsprotocol') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"


# --- the direction of every import between packages (issue 13, item 2) ------------------------

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

import route_agent  # noqa: E402

PACKAGE = Path(route_agent.__file__).parent
LAYERS: tuple[tuple[str, ...], ...] = (
    ("policy",), ("signals",), ("routing",),                          # core
    ("workspace",), ("verify",), ("lanes",), ("ledger",),             # effects
    ("pipeline",),
    ("eval",), ("lsp",), ("cli",),                                    # front ends; `cli` starts the others
)
"""Lowest first: a package may import its own modules and packages of lower rank, never the same rank
or above. The effects packages are ordered too (git and worktrees, then verification, lanes, ledger),
and so are the front ends (the command line serves the editor and runs the evaluation), so no two
packages import each other."""
RANK = {pkg: rank for rank, group in enumerate(LAYERS) for pkg in group}


def _edges() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) < 2:
            continue  # __init__, __main__: the package's entry points
        source = rel.parts[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "route_agent" else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "route_agent" and len(parts) > 1 and parts[1] in RANK and parts[1] != source:
                    found.setdefault((source, parts[1]), []).append(f"{rel.as_posix()}:{node.lineno}")
    return found


def test_every_package_is_placed_in_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == set(RANK)


def test_every_import_between_packages_points_down() -> None:
    upward = {edge: where for edge, where in _edges().items() if RANK[edge[1]] >= RANK[edge[0]]}
    assert upward == {}


def test_the_core_imports_nothing_above_it() -> None:
    core = {"policy", "signals", "routing"}
    above = {edge: where for edge, where in _edges().items() if edge[0] in core and edge[1] not in core}
    assert above == {}
