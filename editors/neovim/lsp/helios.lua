-- Helios for Neovim's built-in LSP client (0.11+): `vim.lsp.enable('helios')` uses this.
-- require('helios').setup() does that for you, with ghost text and key mappings.
---@type vim.lsp.Config
return {
  cmd = { 'helios', 'lsp' },
  filetypes = {
    'python', 'javascript', 'typescript', 'java', 'cpp', 'c', 'go', 'rust', 'html', 'css', 'json',
  },
  -- Helios does not care about projects: one `helios lsp` per Neovim, for every buffer.
  reuse_client = function(client, config)
    return client.name == config.name and not client:is_stopped()
  end,
  -- Sent as initializationOptions; see editors/neovim/README.md for the keys.
  init_options = {},
}
