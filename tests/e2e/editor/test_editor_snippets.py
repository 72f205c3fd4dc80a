"""The editor set-up the docs give works as written: docs/editors/route-agent.lua in a real headless
Neovim (the Debian package, 0.7) attaches to a file in a repository and hover shows the risk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("nvim") is None, reason="Neovim is not installed (scripts/setup-system.sh installs it)")

SNIPPET = REPO_ROOT / "docs" / "editors" / "route-agent.lua"

# Sources the documented file as a user would, opens a file of the repository, and asks for hover
# until the server has scored the change set.
DRIVER = r"""
vim.g.route_agent_cmd = { os.getenv("RA_PYTHON"), "-m", "route_agent", "serve" }
dofile(os.getenv("RA_SNIPPET"))
vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("RA_FILE")))
local bufnr = vim.api.nvim_get_current_buf()
local out = { hover = "", roots = {} }
vim.wait(30000, function()
  for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
    if client.initialized then
      local reply = client.request_sync("textDocument/hover", {
        textDocument = { uri = vim.uri_from_bufnr(bufnr) }, position = { line = 0, character = 0 },
      }, 5000, bufnr)
      if reply and reply.result and reply.result.contents then
        out.hover = reply.result.contents.value or ""
        out.roots = { client.config.root_dir }
        return out.hover:find("Risk score: %d+") ~= nil
      end
    end
  end
  return false
end, 200)
local handle = io.open(os.getenv("RA_OUT"), "w")
handle:write(vim.fn.json_encode(out))
handle:close()
vim.cmd("qa!")
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=root, check=True, capture_output=True)


def test_documented_neovim_setup_shows_the_risk_on_hover(tmp_path: Path) -> None:
    import json

    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "app" / "util.py").write_text("def add(a, b):\n    return a + b\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    (root / "app" / "util.py").write_text("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
    driver = tmp_path / "driver.lua"
    driver.write_text(DRIVER)
    out = tmp_path / "out.json"
    env = {**os.environ, "RA_PYTHON": sys.executable, "RA_SNIPPET": str(SNIPPET), "RA_FILE": str(root / "app" / "util.py"),
           "RA_OUT": str(out), "ROUTE_AGENT_STATE_DIR": str(tmp_path / "state"), "ROUTE_AGENT_CONFIG_DIR": str(tmp_path / "config"),
           "XDG_STATE_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    # Started from another folder: the root must come from the file's repository, not the cwd.
    proc = subprocess.run(["nvim", "--headless", "--clean", "-n", "-c", f"luafile {driver}"], env=env, cwd=tmp_path,
                          capture_output=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert out.exists(), proc.stderr.decode(errors="replace")[-2000:]
    result = json.loads(out.read_text())
    assert result["roots"] == [str(root)]
    assert "Risk score: " in result["hover"]
