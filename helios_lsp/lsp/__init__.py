"""The language server (`helios lsp`): LSP on stdio next to the HTTP sidecar, one engine."""
