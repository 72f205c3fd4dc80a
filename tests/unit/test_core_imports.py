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
