from helios_lsp.cli import main

raise SystemExit(main())
