"""The `helios` command: serve, lsp, complete, models, status."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from helios_lsp import __version__
from helios_lsp.heap import settle
from helios_lsp.logsafe import OneLineFormatter, sanitize
from helios_lsp.settings import Settings, describe_error

log = logging.getLogger("helios")


def setup_logging(debug: bool) -> None:
    """Logs go to stderr only: in `helios lsp`, stdout belongs to JSON-RPC. Each record is
    one line, whatever text reaches it (OneLineFormatter)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler],
                        force=True)
    # pygls logs every message body at INFO; aiohttp's access log is noise here.
    for noisy in ("pygls", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", help="a .gguf path or an Ollama name (env HELIOS_MODEL)")
    common.add_argument("--debug", action="store_true", default=None,
                        help="verbose logs (env HELIOS_DEBUG)")
    common.add_argument("--threads", dest="n_threads", type=int, help="CPU threads (all cores)")
    common.add_argument("--ctx", dest="n_ctx", type=int, help="context size in tokens")

    parser = argparse.ArgumentParser(prog="helios", description=__doc__)
    parser.add_argument("--version", action="version", version=f"helios {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    net = argparse.ArgumentParser(add_help=False)
    net.add_argument("--host", help="address to bind (env HELIOS_HOST, default 127.0.0.1)")
    net.add_argument("--port", type=int, help="HTTP port (env HELIOS_PORT, default 8000)")
    net.add_argument("--allow-remote", action="store_true", default=None,
                     help="allow binding a non-loopback address")
    net.add_argument("--no-share", dest="share", action="store_false", default=None,
                     help="hold the model in this process instead of sharing one engine "
                          "with the user's other Helios processes (env HELIOS_SHARE=false)")

    serve = sub.add_parser("serve", parents=[common, net], help="run the REST API")
    serve.add_argument("--parent-pid", type=int,
                       help="stop when this process exits (env HELIOS_PARENT_PID)")
    lsp = sub.add_parser("lsp", parents=[common, net],
                         help="run the language server on stdio, with the HTTP sidecar")
    lsp.add_argument("--no-http", action="store_true", help="do not start the HTTP sidecar")
    complete = sub.add_parser("complete", parents=[common],
                              help="print one completion for FILE:LINE:COL (1-based)")
    complete.add_argument("location", help="FILE:LINE:COL, 1-based like compiler messages")
    complete.add_argument("--max-tokens", type=int, default=None)
    complete.add_argument("--temperature", type=float, default=None)
    complete.add_argument("--stats", action="store_true",
                          help="also print timing and token counts to stderr")
    complete.add_argument("--json", action="store_true",
                          help="print the result and its counters as one JSON object")
    sub.add_parser("models", parents=[common], help="show what HELIOS_MODEL resolves to and why")
    status = sub.add_parser("status", help="show this user's shared engines, their clients "
                                           "and memory")
    status.add_argument("--json", action="store_true", help="print them as JSON")
    # Started by `helios lsp` / `helios serve` (settings on stdin), not by hand.
    sub.add_parser("engine-daemon", help="the shared engine process (started on demand)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        key: getattr(args, key, None)
        for key in ("model", "debug", "n_threads", "n_ctx", "host", "port", "allow_remote",
                    "parent_pid", "share")
    }
    return Settings.from_env(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "engine-daemon":  # its settings come on stdin, not from the env
        from helios_lsp.shared.daemon import main as daemon_main

        return daemon_main()
    if args.command == "status":
        from helios_lsp.shared.status import main as status_main

        return status_main(as_json=args.json)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"helios: invalid setting: {describe_error(exc)}", file=sys.stderr)
        return 2
    setup_logging(settings.debug)
    if args.command in ("serve", "lsp"):  # long-running: guard the process itself
        if settings.share is None:  # every editor window shares one engine by default
            settings = settings.replace(share=True)
        from http_api.logs import install_repeat_filter
        from http_api.server import raise_nofile_limit

        raise_nofile_limit()  # every connection and document is an open file
        install_repeat_filter()  # a flood of identical errors must not flood the log

    if args.command == "serve":
        from http_api.serve import serve

        settle()
        return serve(settings)
    if args.command == "lsp":
        from helios_lsp.lsp.main import run

        settle()
        return run(settings, http=not args.no_http)
    if args.command == "models":
        return _models(settings)
    return _complete(settings, args)


def _models(settings: Settings) -> int:
    from helios_lsp.engine import ModelError, resolve_model
    from helios_lsp.engine.model_source import embedded_model_path, ollama_store

    if settings.engine != "local":
        return _remote_model(settings)
    print("HELIOS_ENGINE: local (llama.cpp in this process)")

    print(f"HELIOS_MODEL: {settings.model if settings.model_is_explicit else '(not set)'}")
    print(f"Ollama store: {ollama_store()}")
    embedded = embedded_model_path()
    print(f"Embedded model: {embedded if embedded else 'not installed'}")
    try:
        resolved = resolve_model(settings.model)
    except ModelError as exc:
        print(f"Resolves to: nothing: {exc}")
        return 1
    info = resolved.info
    print(f"Resolves to: {resolved.name} [{resolved.source}]")
    print(f"  file: {resolved.path}")
    print(f"  why: {resolved.reason}")
    print(f"  architecture: {info.architecture or 'unknown'}, GGUF v{info.version}, "
          f"{info.n_tensors} tensors, {info.file_size / 1e6:.0f} MB, "
          f"trained context {info.context_length or 'unknown'}")
    return 0


def _remote_model(settings: Settings) -> int:
    """What an engine server will be asked for, and why; it is asked now."""
    import asyncio

    from helios_lsp.engine import EngineError, EngineStats
    from helios_lsp.engine.backends import make_backend
    from helios_lsp.engine.remote import RemoteEngine

    # Asked directly, not through a shared engine.
    remote = make_backend(settings.replace(share=False), EngineStats())
    assert isinstance(remote, RemoteEngine)
    print(f"HELIOS_ENGINE: {settings.engine} at {remote.public_url}"
          + (" (with HELIOS_ENGINE_API_KEY)" if settings.engine_api_key else ""))
    print("HELIOS_MODEL is not used: the engine server holds the model")

    async def ask():
        try:
            await remote.connect()
            return remote.info
        finally:
            await remote.close()

    # What the server says was sanitized where it came in; again here, as it goes to a terminal.
    try:
        info = asyncio.run(ask())
    except EngineError as exc:
        print(f"Uses: nothing yet: {sanitize(exc, 2000)}")
        return 1
    print(f"Uses: {sanitize(info.model, 2000)}"
          + (" (HELIOS_ENGINE_MODEL)" if settings.engine_model else " (as the server names it)"))
    print(f"  context: {info.n_ctx} tokens, {info.slots} request(s) at once")
    print(f"  prompts: {sanitize(info.prompt_mode, 2000)}")
    return 0


def _parse_location(location: str) -> tuple[Path, int, int]:
    path, line, col = location.rsplit(":", 2)
    line_no, col_no = int(line), int(col)
    if line_no < 1 or col_no < 1:
        raise ValueError("LINE and COL are 1-based")
    return Path(path), line_no, col_no


def _complete(settings: Settings, args: argparse.Namespace) -> int:
    from helios_lsp.engine import CompletionInput, Engine, EngineError

    try:
        path, line_no, col_no = _parse_location(args.location)
    except ValueError:
        print("helios complete: expected FILE:LINE:COL with 1-based numbers", file=sys.stderr)
        return 2
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"helios complete: cannot read {path}: {exc.__class__.__name__}", file=sys.stderr)
        return 2
    lines = text.split("\n")
    if line_no > len(lines):
        print(f"helios complete: {path} has {len(lines)} lines", file=sys.stderr)
        return 2
    offset = sum(len(ln) + 1 for ln in lines[: line_no - 1]) + min(col_no - 1,
                                                                   len(lines[line_no - 1]))
    inp = CompletionInput(
        prefix=text[:offset], suffix=text[offset:], filename=path.name,
        max_tokens=args.max_tokens or settings.max_tokens,
        temperature=settings.temperature if args.temperature is None else args.temperature,
    )

    async def run() -> int:
        engine = Engine(settings.replace(share=False))  # one-shot: nothing to share
        try:
            await engine.load()
            out = await engine.complete(inp)
        except EngineError as exc:
            print(f"helios complete: {exc}", file=sys.stderr)
            return 1
        finally:
            await engine.close()
        if args.json:
            print(json.dumps(dataclasses.asdict(out)))
            return 0
        print(out.text)
        if args.stats:
            print(f"confidence {out.confidence:.3f}, {out.seconds:.3f} s, prompt "
                  f"{out.prompt_tokens} tokens ({out.evaluated_tokens} evaluated, "
                  f"{out.reused_tokens} reused), {out.generated_tokens} generated, "
                  f"stop: {out.stop_reason}", file=sys.stderr)
        return 0

    return asyncio.run(run())
