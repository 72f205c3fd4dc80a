"""A real editor other than VS Code: headless Neovim against `route-agent serve` on a repository
with a pending change. Hover shows the risk, code actions route a fix, the always-strong line gets a
`route-agent` diagnostic.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("nvim") is None, reason="Neovim is not installed (scripts/setup-system.sh installs it)")

SCRIPT = Path(__file__).with_name("lsp_neovim.lua")
AUTH = 'def check(request):\n    claims = jwt.decode(request.token, KEY, algorithms=["HS256"])\n    return claims\n'


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=root, check=True, capture_output=True)


def test_neovim_hover_code_actions_and_diagnostics(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "auth").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "auth" / "session.py").write_text("def check(request):\n    return True\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    (root / "auth" / "session.py").write_text(AUTH)  # pending, always strong (auth path and JWT code)
    out = tmp_path / "result.json"
    env = {**os.environ, "RA_PYTHON": sys.executable, "RA_ROOT": str(root), "RA_FILE": str(root / "auth" / "session.py"),
           "RA_LINE": "1", "RA_OUT": str(out), "ROUTE_AGENT_STATE_DIR": str(tmp_path / "state"),
           "ROUTE_AGENT_CONFIG_DIR": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "xdg"),
           "XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    proc = subprocess.run(["nvim", "--headless", "--clean", "-n", "-c", f"luafile {SCRIPT}"], env=env, cwd=root,
                          capture_output=True, timeout=90, check=False, stdin=subprocess.DEVNULL)
    assert out.exists(), proc.stderr.decode(errors="replace")[-2000:]
    result = json.loads(out.read_text())
    assert result["errors"] == []
    assert "Risk score: " in result["hover"] and "strong lane" in result["hover"]
    assert any(title.startswith("Route fix via") for title in result["actions"])
    strong = [d for d in result["diagnostics"] if d["source"] == "route-agent"]
    assert strong and any(d["lnum"] == 1 for d in strong)
