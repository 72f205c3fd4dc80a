-- Drive `route-agent serve` from a real headless Neovim (0.7+): hover, code actions, diagnostics.
-- Environment: RA_PYTHON, RA_ROOT, RA_FILE, RA_LINE (0-based line of the always-strong change), RA_OUT.
local python, root, file = os.getenv("RA_PYTHON"), os.getenv("RA_ROOT"), os.getenv("RA_FILE")
local line = tonumber(os.getenv("RA_LINE"))
local results = { hover = "", actions = {}, diagnostics = {}, errors = {} }

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
    init_options = { debounceMs = 50 },
    on_init = function() ready = true end,
  })
  assert(client_id, "the language server did not start")
  vim.lsp.buf_attach_client(bufnr, client_id)
  assert(vim.wait(15000, function() return ready end, 50), "no initialize response")
  local client = vim.lsp.get_client_by_id(client_id)
  local uri = vim.uri_from_bufnr(bufnr)

  vim.wait(20000, function()
    local reply = client.request_sync("textDocument/hover", {
      textDocument = { uri = uri }, position = { line = line, character = 4 },
    }, 5000, bufnr)
    if reply and reply.result and reply.result.contents then
      local value = reply.result.contents.value or ""
      results.hover = value
      return value:find("Risk score: %d+") ~= nil
    end
    return false
  end, 100)

  local reply = client.request_sync("textDocument/codeAction", {
    textDocument = { uri = uri },
    range = { start = { line = line, character = 0 }, ["end"] = { line = line, character = 0 } },
    context = { diagnostics = {} },
  }, 5000, bufnr)
  for _, action in ipairs((reply and reply.result) or {}) do
    table.insert(results.actions, action.title)
  end

  vim.wait(15000, function()
    for _, d in ipairs(vim.diagnostic.get(bufnr)) do
      if d.source == "route-agent" then return true end
    end
    return false
  end, 100)
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    table.insert(results.diagnostics, { source = d.source, lnum = d.lnum, message = d.message, code = d.code })
  end
  vim.lsp.stop_client(client_id)
  vim.wait(3000, function() return client.is_stopped() end, 50)
end)
if not ok then table.insert(results.errors, tostring(err)) end
finish()
