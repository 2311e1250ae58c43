-- Headless Neovim with editors/neovim/: two buffers of two projects share one `helios lsp`,
-- and both projects' folders become its workspace (context from other files). Writes what
-- it saw to $HELIOS_TEST_OUT as JSON. Run by tests/lsp/test_neovim.py.
-- Environment: HELIOS_NVIM_PLUGIN, HELIOS_TEST_CMD (server command, JSON), HELIOS_TEST_FILE
-- and HELIOS_TEST_FILE2 (a file in each project), HELIOS_TEST_OUT.
local results = {}

local function finish(err)
  results.error = err
  local f = assert(io.open(vim.env.HELIOS_TEST_OUT, 'w'))
  f:write(vim.json.encode(results))
  f:close()
  vim.cmd('qa!')
end

vim.opt.rtp:prepend(vim.env.HELIOS_NVIM_PLUGIN)
require('helios').setup({ cmd = vim.json.decode(vim.env.HELIOS_TEST_CMD) })

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

local function status(client)
  client:request('workspace/executeCommand', { command = 'helios.status', arguments = {} },
    function(err, result) vim.schedule(function() resume(err, result) end) end, 0)
  local _, result = coroutine.yield()
  return result
end

local function attached()
  local client
  for _ = 1, 1200 do
    client = vim.lsp.get_clients({ bufnr = 0, name = 'helios' })[1]
    if client and client.initialized then
      return client
    end
    sleep(50)
  end
  error('the client did not attach')
end

local function scenario()
  vim.cmd.edit(vim.env.HELIOS_TEST_FILE)
  local first = attached()
  vim.cmd.edit(vim.env.HELIOS_TEST_FILE2)
  local second = attached()
  results.one_client = first.id == second.id
  results.client_folders = {}
  for _, folder in ipairs(second.workspace_folders or {}) do
    table.insert(results.client_folders, folder.name)
  end
  for _ = 1, 600 do
    local st = status(second)
    results.server_folders = st and st.workspace_folders
    local work = st and st.engine and st.engine.context and st.engine.context.workspace
    results.indexed = work and work.files
    results.index_state = work and work.state
    if results.server_folders == 2 and results.index_state == 'ready' then
      break
    end
    sleep(100)
  end
  finish(nil)
end

co = coroutine.create(scenario)
vim.schedule(resume)
