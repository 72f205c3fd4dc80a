"""The language server's layout (issue 13, item 3): one module per LSP method or command, each with a
`handle`, all registered in `features/__init__.py`; features never import each other, and the
server core (`server.py`, `state/`) imports no feature."""

from __future__ import annotations

import ast
from pathlib import Path

import route_agent.lsp as lsp_pkg
from route_agent.lsp import features
from route_agent.lsp.app import create_server

LSP = Path(lsp_pkg.__file__).parent
FEATURES = LSP / "features"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _feature_modules() -> list[Path]:
    return sorted(p for p in FEATURES.rglob("*.py") if p.name != "__init__.py")


def test_no_feature_imports_another_feature() -> None:
    offenders = {p.relative_to(LSP).as_posix(): sorted(m for m in _imports(p) if m.startswith("route_agent.lsp.features"))
                 for p in _feature_modules()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_server_core_imports_no_feature() -> None:
    core = [LSP / "server.py", LSP / "protocol.py", *sorted((LSP / "state").glob("*.py"))]
    offenders = {p.name: sorted(m for m in _imports(p) if m.startswith("route_agent.lsp.features")) for p in core}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_feature_module_has_a_handler_and_is_registered_in_one_place() -> None:
    registered = {m.split("route_agent.lsp.features.", 1)[1].split(".")[-1]
                  for m in _imports(FEATURES / "__init__.py") if m.startswith("route_agent.lsp.features.")}
    modules = {p.stem for p in _feature_modules()}
    assert modules <= registered, f"feature modules not registered: {sorted(modules - registered)}"
    for path in _feature_modules():
        names = {n.name for n in ast.parse(path.read_text("utf-8")).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        assert "handle" in names, f"{path.name} has no handle()"
    for path in _feature_modules():
        text = path.read_text("utf-8")
        assert ".feature(" not in text and ".command(" not in text, f"{path.name} registers itself"


def test_every_command_is_registered() -> None:
    server = create_server()
    commands = set(server.protocol.fm.commands)
    assert commands == set(features.COMMANDS)
    assert {"route-agent.routeFix", "route-agent.routeTask", "route-agent.approvePolicy", "route-agent.riskSummary"} <= commands
