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

from support.repos import git

pytestmark = pytest.mark.skipif(shutil.which("nvim") is None, reason="Neovim is not installed (scripts/setup-system.sh installs it)")

SCRIPT = Path(__file__).with_name("lsp_neovim.lua")
AUTH = 'def check(request):\n    claims = jwt.decode(request.token, KEY, algorithms=["HS256"])\n    return claims\n'





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


# A routed fix driven from Neovim 0.7+: the code action's command, the escalation prompt answered
# "Escalate" (window/showMessageRequest), then the verified patch applied through Neovim's own
# workspace/applyEdit handler and written to disk.
ROUTED_LUA = r"""
local python, root, file = os.getenv("RA_PYTHON"), os.getenv("RA_ROOT"), os.getenv("RA_FILE")
local results = { prompts = {}, verify = {}, actions = {}, runs = {}, applied = nil, errors = {} }

local function finish()
  local handle = io.open(os.getenv("RA_OUT"), "w")
  handle:write(vim.fn.json_encode(results))
  handle:close()
  vim.cmd("qa!")
end

local ok, err = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(file))
  local bufnr = vim.api.nvim_get_current_buf()
  local ready = false
  local client_id = vim.lsp.start_client({
    name = "route-agent",
    cmd = { python, "-m", "route_agent", "serve" },
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = "repo" } },
    init_options = { debounceMs = 50, policyPath = os.getenv("RA_POLICY") },
    on_init = function() ready = true end,
    handlers = {
      ["window/showMessageRequest"] = function(_, params)
        -- What the user saw when asked: the prompt, and the verification diagnostics already pushed.
        table.insert(results.prompts, params.message)
        for _, d in ipairs(vim.diagnostic.get()) do
          if d.source == "route-agent/verify" then
            table.insert(results.verify, { file = vim.api.nvim_buf_get_name(d.bufnr), lnum = d.lnum, code = d.code })
          end
        end
        return { title = "Escalate" }
      end,
    },
  })
  assert(client_id, "the language server did not start")
  vim.lsp.buf_attach_client(bufnr, client_id)
  assert(vim.wait(15000, function() return ready end, 50), "no initialize response")
  local client = vim.lsp.get_client_by_id(client_id)
  local uri = vim.uri_from_bufnr(bufnr)

  local function command(name, arg)
    local reply = client.request_sync("workspace/executeCommand", { command = name, arguments = { arg } }, 10000, bufnr)
    assert(reply and not reply.err, name .. " failed: " .. vim.inspect(reply))
    return reply.result
  end

  local route
  vim.wait(20000, function()
    local reply = client.request_sync("textDocument/codeAction", {
      textDocument = { uri = uri },
      range = { start = { line = 17, character = 0 }, ["end"] = { line = 17, character = 0 } },
      context = { diagnostics = {} },
    }, 5000, bufnr)
    for _, action in ipairs((reply and reply.result) or {}) do
      if action.title:find("^Route fix via fast lane") then route = action end
    end
    return route ~= nil
  end, 100)
  assert(route and route.command, "no 'Route fix via fast lane' code action")
  table.insert(results.actions, route.title)
  command(route.command.command, route.command.arguments[1])

  local passed
  vim.wait(150000, function()
    passed = nil
    for _, run in ipairs(command("route-agent.status", {}).runs) do
      if run.status == "passed" then passed = run end
    end
    return passed ~= nil
  end, 250)
  results.runs = command("route-agent.status", {}).runs
  assert(passed, "no routed run passed")
  results.applied = command("route-agent.applyPatch", { run_id = passed.run_id })
  vim.cmd("silent wall")
  vim.lsp.stop_client(client_id)
  vim.wait(3000, function() return client.is_stopped() end, 50)
end)
if not ok then table.insert(results.errors, tostring(err)) end
finish()
"""


def test_neovim_routed_fix_escalates_and_applies_the_patch(tmp_path: Path, fake_llm) -> None:  # type: ignore[no-untyped-def]
    from support.repos import FIX_REPLY, SKIP_TEST_REPLY, make_sync_repo

    root = make_sync_repo(tmp_path / "repo")
    fake_llm.script("fast-skipper", reply=SKIP_TEST_REPLY)
    fake_llm.script("strong-fixer", reply=FIX_REPLY)
    fake_llm.script("verifier-90", reply='{"verdict": "pass", "confidence": 0.9, "summary": "releases the connection", "concerns": []}')
    check = (f"{{name: tests, kind: tests, run: [{sys.executable}, -m, pytest, -q, -p, no:cacheprovider, "
             "--junitxml=.route-agent/junit.xml], parser: junit, report: .route-agent/junit.xml, timeout_s: 120}")
    model = '{{provider: openai-compatible, base_url: "{url}", api_key_env: FAKE_LLM_KEY, model: {name}, executor: oneshot}}'
    policy = tmp_path / "policy.yaml"
    policy.write_text("models:\n" + "".join(f"  {lane}: {model.format(url=fake_llm.base_url, name=name)}\n" for lane, name in
                      (("fast", "fast-skipper"), ("strong", "strong-fixer"), ("verifier", "verifier-90")))
                      + f"verification:\n  fast: [{check}]\n  strong: [{check}]\n")
    script = tmp_path / "routed.lua"
    script.write_text(ROUTED_LUA)
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(RA_PYTHON=sys.executable, RA_ROOT=str(root), RA_FILE=str(root / "app" / "sync.py"), RA_OUT=str(out), RA_POLICY=str(policy),
               FAKE_LLM_KEY="test-key-not-secret-abc123", ROUTE_AGENT_STATE_DIR=str(tmp_path / "state"),
               ROUTE_AGENT_CONFIG_DIR=str(tmp_path / "config"), ROUTE_AGENT_LEDGER=str(tmp_path / "ledger.sqlite3"),
               XDG_STATE_HOME=str(tmp_path / "xdg"), XDG_DATA_HOME=str(tmp_path / "xdg"), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    proc = subprocess.run(["nvim", "--headless", "--clean", "-n", "-c", f"luafile {script}"], env=env, cwd=root,
                          capture_output=True, timeout=240, check=False, stdin=subprocess.DEVNULL)
    assert out.exists(), proc.stderr.decode(errors="replace")[-2000:]
    result = json.loads(out.read_text())
    assert result["errors"] == [], result
    assert result["prompts"] == ["Fast lane failed 1 check. Escalate to strong lane?"]
    assert any(d["code"] == "tamper" and d["file"].endswith("tests/test_sync.py") for d in result["verify"]), result["verify"]
    lanes = {run["lane"]: run["status"] for run in result["runs"]}
    assert lanes == {"fast": "failed", "strong": "passed"}, result["runs"]
    assert result["applied"]["applied"] is True
    assert "        pool.release()\n" in (root / "app" / "sync.py").read_text()
