-- Drives a headless Neovim with editors/neovim/ against `helios lsp` and writes what it saw
-- to $HELIOS_TEST_OUT as JSON. Run by tests/lsp/test_neovim.py:
--   nvim --headless --clean -u tests/lsp/nvim_init.lua
-- Environment: HELIOS_NVIM_PLUGIN (editors/neovim), HELIOS_TEST_CMD (server command, JSON),
-- HELIOS_TEST_FILE (a Python file whose line 2 is the cursor's), HELIOS_TEST_OUT; optional
-- HELIOS_TEST_HOLD (a file to wait for before asking once more and quitting).
local results = { version = tostring(vim.version()), steps = {} }

local function finish(err)
  results.error = err
  local f = assert(io.open(vim.env.HELIOS_TEST_OUT, 'w'))
  f:write(vim.json.encode(results))
  f:close()
  vim.cmd('qa!')
end

local function step(name)
  table.insert(results.steps, name)
end

vim.opt.rtp:prepend(vim.env.HELIOS_NVIM_PLUGIN)
require('helios').setup({
  cmd = vim.json.decode(vim.env.HELIOS_TEST_CMD),
  settings = { maxTokens = 32, temperature = 0.0 },
})

-- A coroutine runs the scenario; `sleep` and `request` yield to Neovim's main loop, so
-- insert mode, autocommands and LSP messages are processed as in an interactive session.
local co
local function resume(...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    finish(tostring(err))
  end
end

local function sleep(ms)
  vim.defer_fn(function() resume() end, ms)
  coroutine.yield()
end

local function wait_until(what, timeout_ms, cond)
  local waited = 0
  while not cond() do
    if waited > timeout_ms then
      error('timed out waiting for ' .. what)
    end
    sleep(50)
    waited = waited + 50
  end
end

local function request(client, method, params)
  client:request(method, params, function(err, result)
    vim.schedule(function() resume(err, result) end)
  end, 0)
  return coroutine.yield()
end

local function scenario()
  vim.cmd.edit(vim.env.HELIOS_TEST_FILE)
  results.filetype = vim.bo.filetype
  local client
  wait_until('the client to attach', 60000, function()
    client = vim.lsp.get_clients({ bufnr = 0, name = 'helios' })[1]
    return client ~= nil and client.initialized
  end)
  step('attached')
  results.offset_encoding = client.offset_encoding
  results.inline_provider = client.server_capabilities.inlineCompletionProvider ~= nil
  results.inline_enabled = vim.lsp.inline_completion.is_enabled({ bufnr = 0 })

  wait_until('the model', 60000, function()
    local _, status = request(client, 'workspace/executeCommand',
      { command = 'helios.status', arguments = {} })
    results.state = status and status.engine and status.engine.state
    return results.state == 'ready' or results.state == 'failed'
  end)
  step('model ' .. results.state)

  -- At the end of line 2 ("    ", the function's body), as in insert mode.
  local at = {
    textDocument = { uri = vim.uri_from_bufnr(0) },
    position = { line = 1, character = 4 },
  }
  local err, inline = request(client, 'textDocument/inlineCompletion',
    vim.tbl_extend('force', at, { context = { triggerKind = 1 } }))
  results.inline = inline
  results.inline_error = err and err.message
  step('inline')

  local cerr, completion = request(client, 'textDocument/completion', at)
  results.completion = completion
  results.completion_error = cerr and cerr.message
  step('completion')

  -- Ghost text as a user sees it: insert mode at the end of line 2, Neovim asks on its
  -- own, shows the suggestion as virtual text, and <Tab> (the plugin's key) accepts it.
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.cmd('startinsert!')
  local ns = vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  wait_until('ghost text', 60000, function()
    ns = ns or vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    return ns ~= nil and #vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, {}) > 0
  end)
  local mark = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })[1]
  local shown = {}
  for _, chunk in ipairs(mark[4].virt_text or {}) do
    table.insert(shown, chunk[1])
  end
  results.ghost_text = table.concat(shown)
  results.ghost_at = { mark[2], mark[3] }
  results.mode = vim.api.nvim_get_mode().mode
  step('ghost text')

  vim.api.nvim_feedkeys(vim.keycode('<Tab>'), 'm', false)
  wait_until('the suggestion to be accepted', 10000, function()
    return vim.api.nvim_buf_get_lines(0, 1, 2, true)[1] ~= '    '
  end)
  results.accepted_line = vim.api.nvim_buf_get_lines(0, 1, 2, true)[1]
  step('accepted')
  vim.cmd('stopinsert')
  if vim.env.HELIOS_TEST_HOLD then
    -- Several windows at once (tests/shared): say this one is done, stay open until the
    -- test says so, then ask once more (the other windows may have closed meanwhile).
    local f = assert(io.open(vim.env.HELIOS_TEST_OUT .. '.ready', 'w'))
    f:write(vim.json.encode(results))
    f:close()
    wait_until('the test to release this window', 120000, function()
      return vim.uv.fs_stat(vim.env.HELIOS_TEST_HOLD) ~= nil
    end)
    local aerr, again = request(client, 'textDocument/inlineCompletion', {
      textDocument = { uri = vim.uri_from_bufnr(0) },
      -- The empty last line: a new place (what was accepted may have filled the others).
      position = { line = vim.api.nvim_buf_line_count(0) - 1, character = 0 },
      context = { triggerKind = 1 },
    })
    results.again = again
    results.again_error = aerr and aerr.message
    step('asked again')
  end
  finish(nil)
end

co = coroutine.create(scenario)
vim.schedule(resume)
