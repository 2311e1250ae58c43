--- Helios in Neovim: ghost text from `helios lsp` through the built-in LSP client.
---
--- Neovim 0.12+: inline completion (`vim.lsp.inline_completion`): ghost text as you type.
--- Neovim 0.11: no inline completion; Helios' suggestion is an item in the completion menu
--- (`vim.lsp.completion`, triggered as you type).
local M = {}

local NAME = 'helios'

---@class helios.Opts
local defaults = {
  --- The server command. Any `helios lsp` flag can go here (e.g. '--no-http').
  cmd = { 'helios', 'lsp' },
  --- Filetypes to attach to (nil: the documented languages, see lsp/helios.lua).
  filetypes = nil,
  --- Sent to the server as initializationOptions: maxTokens, temperature,
  --- enabledLanguages, disabledLanguages, http = { enabled, port } (or http = false).
  settings = {},
  --- Ghost text (0.12+). When false, or on 0.11, the suggestion is a completion item.
  inline = true,
  --- Also offer the suggestion in the completion menu, triggered as you type.
  --- (Default: only where inline completion is unavailable.)
  completion = nil,
  --- Insert-mode keys; set one to false to leave that key alone.
  keymaps = {
    accept = '<Tab>', -- accept the ghost text (falls back to a plain <Tab>)
    next = '<M-]>', -- next suggestion
    prev = '<M-[>', -- previous suggestion
  },
}

M.options = vim.deepcopy(defaults)
M.enabled = true

local has_inline = vim.lsp.inline_completion ~= nil

local function helios_clients(bufnr)
  return vim.lsp.get_clients({ name = NAME, bufnr = bufnr })
end

--- Turn Helios' ghost text on or off in one buffer.
local function set_inline(bufnr, enable)
  if has_inline and M.options.inline then
    vim.lsp.inline_completion.enable(enable, { bufnr = bufnr })
  end
end

local function on_attach(args)
  local client = vim.lsp.get_client_by_id(args.data.client_id)
  if not client or client.name ~= NAME then
    return
  end
  local bufnr = args.buf
  set_inline(bufnr, M.enabled)
  local completion = M.options.completion
  if completion == nil then
    completion = not (has_inline and M.options.inline)
  end
  if completion and vim.lsp.completion then
    vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = true })
  end

  local keys = M.options.keymaps or {}
  if has_inline and M.options.inline then
    if keys.accept then
      vim.keymap.set('i', keys.accept, function()
        if not vim.lsp.inline_completion.get() then
          return keys.accept
        end
      end, { buffer = bufnr, expr = true, replace_keycodes = true,
             desc = 'Helios: accept the suggestion' })
    end
    if keys.next then
      vim.keymap.set('i', keys.next, function()
        vim.lsp.inline_completion.select({ count = 1 })
      end, { buffer = bufnr, desc = 'Helios: next suggestion' })
    end
    if keys.prev then
      vim.keymap.set('i', keys.prev, function()
        vim.lsp.inline_completion.select({ count = -1 })
      end, { buffer = bufnr, desc = 'Helios: previous suggestion' })
    end
  end
end

--- Turn Helios' suggestions on or off everywhere (`:HeliosToggle`).
---@param enable? boolean nil: the opposite of now
function M.toggle(enable)
  if enable == nil then
    enable = not M.enabled
  end
  M.enabled = enable
  for _, client in ipairs(helios_clients()) do
    for bufnr in pairs(client.attached_buffers) do
      set_inline(bufnr, enable)
    end
  end
  vim.notify('Helios ' .. (enable and 'on' or 'off'))
end

--- Run a Helios command on the server; `on_result(result)` gets its answer.
---@param command 'helios.status'|'helios.restart'
function M.command(command, on_result)
  local client = helios_clients()[1]
  if not client then
    vim.notify('Helios is not running', vim.log.levels.WARN)
    return
  end
  client:request('workspace/executeCommand', { command = command, arguments = {} },
    function(err, result)
      if err then
        vim.notify(('Helios: %s failed: %s'):format(command, err.message), vim.log.levels.ERROR)
      elseif on_result then
        on_result(result)
      end
    end)
end

--- Change the server's settings while it runs (same keys as `settings`).
function M.configure(settings)
  M.options.settings = settings
  for _, client in ipairs(helios_clients()) do
    client:notify('workspace/didChangeConfiguration', { settings = { helios = settings } })
  end
end

local function show_status(result)
  local engine = result.engine or {}
  vim.notify(('Helios %s: model %s (%s), HTTP %s'):format(
    result.version or '?', engine.model_name or 'none', engine.state or '?',
    (result.http or {}).status or '?'))
end

---@param opts? helios.Opts
function M.setup(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  local config = { cmd = M.options.cmd, init_options = M.options.settings }
  if M.options.filetypes then
    config.filetypes = M.options.filetypes
  end
  vim.lsp.config(NAME, config)
  vim.lsp.enable(NAME)

  local group = vim.api.nvim_create_augroup('helios', { clear = true })
  vim.api.nvim_create_autocmd('LspAttach', { group = group, callback = on_attach })

  vim.api.nvim_create_user_command('HeliosToggle', function()
    M.toggle()
  end, { desc = 'Helios: suggestions on/off' })
  vim.api.nvim_create_user_command('HeliosStatus', function()
    M.command('helios.status', show_status)
  end, { desc = 'Helios: model and server status' })
  vim.api.nvim_create_user_command('HeliosRestart', function()
    M.command('helios.restart', show_status)
  end, { desc = 'Helios: reload the model' })
end

return M
