-- Helios for Neovim's built-in LSP client (0.11+): `vim.lsp.enable('helios')` uses this.
-- require('helios').setup() does that for you, with ghost text and key mappings.
---@type vim.lsp.Config
return {
  cmd = { 'helios', 'lsp' },
  filetypes = {
    'python', 'javascript', 'typescript', 'java', 'cpp', 'c', 'go', 'rust', 'html', 'css', 'json',
  },
  -- The project a buffer belongs to: its folder is read for context from other files.
  root_markers = {
    '.git', 'pyproject.toml', 'setup.py', 'package.json', 'tsconfig.json', 'go.mod',
    'Cargo.toml', 'pom.xml', 'build.gradle', 'CMakeLists.txt', 'Makefile',
  },
  -- One `helios lsp` per Neovim, for every buffer: a buffer of another project adds that
  -- project's folder to the workspace (workspace/didChangeWorkspaceFolders).
  reuse_client = function(client, config)
    if client.name ~= config.name or client:is_stopped() then
      return false
    end
    local root = config.root_dir
    if type(root) ~= 'string' or not client._add_workspace_folder then
      return true
    end
    for _, folder in ipairs(client.workspace_folders or {}) do
      if folder.name == root then
        return true
      end
    end
    client:_add_workspace_folder(root)
    return true
  end,
  -- Sent as initializationOptions; see editors/neovim/README.md for the keys.
  init_options = {},
}
