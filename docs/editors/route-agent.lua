-- route-agent's language server in Neovim 0.7 or newer (no plugin needed).
-- Put this file somewhere and `dofile()` it from init.lua (or `:luafile` it). Every file buffer
-- inside a git repository gets one route-agent server per repository, rooted at the repository's
-- top folder (without a root the server has no workspace and hover stays empty).
-- Settings: vim.g.route_agent_cmd (default {"route-agent", "serve"}) and
-- vim.g.route_agent_init_options (a table sent as initializationOptions, e.g. {policyPath = "..."}).
local servers = {} -- repository root -> client id

local function git_root(path)
  if path == "" then return nil end
  local dir = vim.fn.fnamemodify(path, ":p:h")
  local git_dir = vim.fn.finddir(".git", dir .. ";")
  if git_dir ~= "" then return vim.fn.fnamemodify(git_dir, ":p:h:h") end
  local git_file = vim.fn.findfile(".git", dir .. ";") -- a linked worktree or a submodule
  if git_file ~= "" then return vim.fn.fnamemodify(git_file, ":p:h") end
  return nil
end

local function attach(args)
  local bufnr = args.buf
  if vim.bo[bufnr].buftype ~= "" then return end
  local root = git_root(vim.api.nvim_buf_get_name(bufnr))
  if root == nil then return end
  local id = servers[root]
  if id == nil or vim.lsp.get_client_by_id(id) == nil then
    id = vim.lsp.start_client({
      name = "route-agent",
      cmd = vim.g.route_agent_cmd or { "route-agent", "serve" },
      root_dir = root,
      workspace_folders = { { uri = vim.uri_from_fname(root), name = vim.fn.fnamemodify(root, ":t") } },
      init_options = vim.g.route_agent_init_options,
    })
    servers[root] = id
  end
  if id ~= nil then vim.lsp.buf_attach_client(bufnr, id) end
end

vim.api.nvim_create_autocmd({ "BufReadPost", "BufNewFile" }, { pattern = "*", callback = attach })
