"""`helios lsp` whose didOpen handler writes to stdout from Python and to file descriptor 1
directly (as native code would). The LSP stream must not notice."""

from __future__ import annotations

import os
import sys

from helios_lsp.cli import main
from helios_lsp.lsp import server

_did_open = server.did_open


def noisy_did_open(ls, params):
    print("print() to stdout")
    sys.stdout.write("Content-Length: 9999\r\n\r\n{")
    sys.stdout.flush()
    os.write(1, b"a native write to fd 1\n")
    _did_open(ls, params)


server.did_open = noisy_did_open

if __name__ == "__main__":
    sys.exit(main(["lsp", *sys.argv[1:]]))
