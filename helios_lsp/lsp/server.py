"""The Helios language server: inline completions and completion items from the engine.

Handlers are thin: they find the document, place the suggestion (`suggestions`), await the
engine and shape the answer. The engine owns everything about what to suggest.

- Completion handlers are `async`: pygls cancels the task on `$/cancelRequest`, and the
  engine then drops the job (queued) or stops it at its next token (running).
- The engine supersedes an older job for the same document (client id "lsp" + URI): the
  older request answers with an empty result, never an error.
- While the model loads, or after it failed, completions are empty; the user is told why
  once through window/logMessage (and window/showMessage for a failed load).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Generator
from typing import Any

from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder
from pygls.lsp.server import LanguageServer
from pygls.protocol.language_server import lsp_method

from helios_lsp import __version__
from helios_lsp.engine import (
    CompletionInput,
    Engine,
    EngineError,
    EngineOverloadedError,
    EngineState,
    JobCancelledError,
    ModelError,
    ModelNotLoadedError,
    describe_state,
)
from helios_lsp.logsafe import safe
from helios_lsp.lsp import suggestions
from helios_lsp.lsp.config import SECTION, ClientConfig, parse_config
from helios_lsp.lsp.documents import UTF16, DocumentStore, TextDocument
from helios_lsp.lsp.jsonrpc import StrictProtocol
from helios_lsp.lsp.progress import LoadProgress, client_request
from helios_lsp.lsp.sidecar import Sidecar
from helios_lsp.lsp.workspace import Workspace, watch_registration
from helios_lsp.settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID = "lsp"
CMD_RESTART = "helios.restart"
CMD_STATUS = "helios.status"
# Characters after which an editor without inline completion should ask again at once.
TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", ":", "=", " "]
CONFIG_PULL_TIMEOUT = 5.0
# Seconds without an edit or a request before the cache is warmed where the user edits:
# long enough that a typing user's own requests come first.
PREFETCH_PAUSE = 0.3


class HeliosProtocol(StrictProtocol):
    """pygls' protocol with three changes.

    - Frames are decoded strictly (`jsonrpc.StrictProtocol`): every request gets an answer,
      bad input never reaches a handler.
    - `exit` asks the main loop to stop instead of calling sys.exit() from a callback, so
      the sidecar and the model are released in order.
    - Documents live in `HeliosLanguageServer.documents` (see documents.py for why), so
      pygls' own copy is not kept: the handlers below only hand over to ours.
    """

    _server: HeliosLanguageServer

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        self._server.request_stop(0 if self._shutdown else 1)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: Any) -> Generator[Any, Any, None]:
        if (user_handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield user_handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: Any) -> Generator[Any, Any, None]:
        if (user_handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield user_handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: Any) -> Generator[Any, Any, None]:
        if (user_handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield user_handler, (params,), None

    def cancel_requests(self) -> None:
        """Cancel every request still being handled (their engine jobs stop with them),
        except the one calling (`shutdown`)."""
        current = asyncio.current_task()
        for future in list(self._request_futures.values()):
            if isinstance(future, asyncio.Future) and future is not current and not future.done():
                future.cancel()


class HeliosLanguageServer(LanguageServer):
    protocol: HeliosProtocol

    def __init__(self, settings: Settings, engine: Engine, *, http: bool):
        super().__init__(
            "helios", __version__, protocol_cls=HeliosProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.settings = settings
        self.engine = engine
        self.documents = DocumentStore()
        # Workspace folders and open documents, as sources of context (pygls has its own
        # `workspace`, which Helios does not use: documents.py says why).
        self.project = Workspace(engine)
        self.config = ClientConfig.defaults(settings)
        self.encoding: str = UTF16
        self.sidecar = Sidecar(engine, settings, allowed=http, tell=self.tell)
        self.progress = LoadProgress(self, engine, self._describe_state)
        engine.add_listener(self.progress.on_state)
        self.client_name = "unknown client"
        self.supports_config_pull = False
        self.markdown_docs = False  # the client renders Markdown in completion documentation
        self.exit_code: int | None = None
        self.stop_requested = asyncio.Event()
        self._initialized = False
        self._pending: list[tuple[str, types.MessageType, bool]] = []
        self._load_task: asyncio.Task[None] | None = None
        self._released = False
        self._told_not_ready = False
        self._tasks: set[asyncio.Future[None]] = set()
        self._prefetch_timer: asyncio.TimerHandle | None = None

    # --- talking to the user ------------------------------------------------------

    def tell(self, message: str, kind: types.MessageType = types.MessageType.Info,
             show: bool = False) -> None:
        """Log to stderr and to the client's log (window/logMessage); with `show`, also
        pop up (window/showMessage). Held back until the client has said `initialized`."""
        level = {types.MessageType.Error: logging.ERROR,
                 types.MessageType.Warning: logging.WARNING}.get(kind, logging.INFO)
        log.log(level, "%s", safe(message, 1000))  # messages can quote client text
        if not self._initialized:
            self._pending.append((message, kind, show))
            return
        self._send(message, kind, show)

    def _send(self, message: str, kind: types.MessageType, show: bool) -> None:
        text = f"Helios: {message}"
        try:
            self.window_log_message(types.LogMessageParams(type=kind, message=text))
            if show:
                self.window_show_message(types.ShowMessageParams(type=kind, message=text))
        except Exception:  # the client is gone; stderr has the message
            log.debug("could not send a message to the client", exc_info=True)

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls pops up every internal error; a log line is enough (requests answer with
        # their own error).
        log.error("internal error (%s): %s", getattr(source, "__name__", source),
                  safe(error, 1000))

    # --- lifecycle ------------------------------------------------------------------

    def start_loading(self) -> None:
        """Load the model in the background; completions are empty until it is ready."""
        if self._load_task is None:
            self._load_task = asyncio.create_task(self.load_model())

    async def load_model(self, *, restart: bool = False) -> None:
        try:
            await self.engine.load(restart=restart)
        except ModelError:
            remedy = ("Helios retries by itself" if self.engine.retrying else
                      f"fix {self.engine.settings_to_fix} and run {CMD_RESTART}")
            self.tell(f"the model could not be loaded: {self.engine.load_error}. Completions "
                      f"are off; {remedy}.", types.MessageType.Error, show=True)
        except Exception:
            log.exception("model load failed")
        else:
            self._told_not_ready = False
            self.tell(f"model {self.engine.model_name} ready")

    def _why_not_ready(self) -> str:
        # The full load error: this user runs the server, paths are theirs to see.
        return describe_state(self.engine.state, self.engine.load_error)

    def _describe_state(self, state: EngineState) -> str:
        """The end of the load's progress report (a popup has already said why it failed)."""
        if state is EngineState.READY:
            return f"{self.engine.model_name} ready"
        return describe_state(state)

    def on_initialized(self) -> None:
        self._initialized = True
        pending, self._pending = self._pending, []
        for message, kind, show in pending:
            self._send(message, kind, show)
        if self.supports_progress:
            self.progress.start()

    @property
    def supports_progress(self) -> bool:
        caps = getattr(self.protocol, "client_capabilities", None)
        return bool(caps and caps.window and caps.window.work_done_progress)

    def request_stop(self, exit_code: int) -> None:
        if self.exit_code is None:
            self.exit_code = exit_code
        self.stop_requested.set()

    async def release(self) -> None:
        """Stop HTTP, cancel requests, free the model. Safe to call more than once."""
        if self._released:
            return
        self._released = True
        self.cancel_prefetch()
        self.protocol.cancel_requests()
        if self._load_task is not None:
            # A load cannot be interrupted inside llama.cpp: let it end, then free the model.
            await asyncio.wait({self._load_task})
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        await self.progress.close()
        await self.sidecar.close()
        await self.engine.close()
        log.info("model released")

    # --- settings -------------------------------------------------------------------

    def apply_config(self, raw: Any, source: str) -> ClientConfig:
        """Take the client's settings at once: the next request sees them. The caller
        brings the HTTP sidecar in line (`sidecar.configure(config.http)`)."""
        config, problems = parse_config(raw, self.settings)
        if problems:
            self.tell(f"invalid settings in {source}, defaults kept for them: "
                      + "; ".join(problems), types.MessageType.Warning, show=True)
        self.config = config
        self.project.configure(config.context)
        log.info("settings from %s: %s", source, safe(config.model_dump(by_alias=True), 2000))
        return config

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a background task, kept until done (and awaited at release)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- completion -----------------------------------------------------------------

    def completable(self, uri: str) -> TextDocument | None:
        doc = self.documents.get(uri)
        if doc is None:
            return None
        if not self.config.language_enabled(doc.language_id, suggestions.filename_of(uri)):
            return None
        return doc

    # --- warming the cache where the user edits ----------------------------------------

    def edited(self, params: types.DidChangeTextDocumentParams) -> None:
        """After an edit, once the user pauses, warm the engine's cache at the end of the
        last change (where the cursor is): the next request there starts warm. A request
        meanwhile cancels the timer; one arriving during the warming preempts it."""
        if self._prefetch_timer is not None:
            self._prefetch_timer.cancel()
            self._prefetch_timer = None
        last = params.content_changes[-1] if params.content_changes else None
        doc = self.completable(params.text_document.uri)
        if doc is None or not isinstance(last, types.TextDocumentContentChangePartial):
            return
        offset = doc.offset_at(last.range.start, self.encoding) + len(last.text)
        position = doc.position_at(offset, self.encoding)
        self._prefetch_timer = asyncio.get_running_loop().call_later(
            PREFETCH_PAUSE, self._prefetch, doc.uri, position)

    def _prefetch(self, uri: str, position: types.Position) -> None:
        """The user paused: warm the place, and let its context block be chosen again."""
        self._prefetch_timer = None
        doc = self.completable(uri)
        if doc is not None:
            placement = suggestions.inline_placement(doc, position, self.encoding, self.config,
                                                     name=self.project.name_of(uri))
            self.engine.prefetch(placement.inp, client_id=CLIENT_ID, document=uri)

    def cancel_prefetch(self) -> None:
        if self._prefetch_timer is not None:
            self._prefetch_timer.cancel()
            self._prefetch_timer = None

    async def suggest(self, doc: TextDocument, inp: CompletionInput, *,
                      invoked: bool = False) -> str:
        """The engine's suggestion, or "" when there is none to give (not loaded, failed,
        superseded). Cancellation of the calling task propagates (and stops the job)."""
        started = time.perf_counter()
        self.cancel_prefetch()  # asked already: nothing to warm ahead of it
        try:
            out = await self.engine.complete(inp, client_id=CLIENT_ID, document=doc.uri)
        except ModelNotLoadedError:
            if invoked or not self._told_not_ready:  # once, unless the user asked
                self._told_not_ready = True
                self.tell(f"no completion: {self._why_not_ready()}")
            return ""
        except JobCancelledError as exc:
            log.debug("completion for %s %s", safe(doc.uri), exc.reason)
            return ""
        except EngineOverloadedError as exc:
            # Every caller shares the engine's bound; a refused keystroke just shows nothing
            # (the next one asks again), so no popup and no error answer.
            log.debug("completion for %s refused: %s", safe(doc.uri), exc)
            return ""
        except EngineError as exc:
            log.warning("completion failed for %s: %s", safe(doc.uri), exc)
            return ""
        except Exception:  # an editor must never see an internal error for a suggestion
            log.exception("completion failed for %s", safe(doc.uri))
            return ""
        log.debug("completion for %s in %.3f s (engine %.3f s, %s%s)", safe(doc.uri),
                  time.perf_counter() - started, out.seconds, out.stop_reason,
                  ", type-ahead" if out.from_typeahead else "")
        return out.text

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "client": self.client_name,
            "position_encoding": self.encoding,
            "documents": len(self.documents),
            "settings": self.config.model_dump(by_alias=True),
            "http": {"status": self.sidecar.status, "url": self.sidecar.url},
            "workspace_folders": len(self.project.folders),
            "engine": self.engine.snapshot(),
        }


# --- features ----------------------------------------------------------------------------


async def initialize(ls: HeliosLanguageServer, params: types.InitializeParams) -> None:
    caps = params.capabilities
    encoding = ServerCapabilitiesBuilder.choose_position_encoding(caps)  # as pygls answers
    ls.encoding = getattr(encoding, "value", encoding)
    if params.client_info is not None:
        ls.client_name = " ".join(filter(None, (params.client_info.name,
                                                params.client_info.version)))
    ls.supports_config_pull = bool(caps.workspace and caps.workspace.configuration)
    completion_caps = caps.text_document.completion if caps.text_document else None
    item_caps = completion_caps.completion_item if completion_caps else None
    formats = (item_caps.documentation_format if item_caps else None) or ()
    ls.markdown_docs = types.MarkupKind.Markdown in formats
    inline = bool(caps.text_document and caps.text_document.inline_completion)
    log.info("client %s: position encoding %s, inline completion %s", safe(ls.client_name),
             ls.encoding, "yes" if inline else "no (completion items)")
    config = ls.apply_config(params.initialization_options, "initializationOptions")
    ls.project.start(params)
    if config.share is not None:
        ls.engine.set_share(config.share)
    ls.start_loading()  # now that the client said where the model should live
    # Answer once HTTP is bound (or known to be elsewhere): clients can use it right away.
    await ls.sidecar.configure(config.http)


def initialized(ls: HeliosLanguageServer, params: types.InitializedParams) -> None:
    ls.on_initialized()
    caps = ls.protocol.client_capabilities.workspace
    watched = caps.did_change_watched_files if caps else None
    if watched and watched.dynamic_registration and ls.project.folders:
        ls.spawn(watch_files(ls))


async def watch_files(ls: HeliosLanguageServer) -> None:
    """Have the client report changes to the files the index reads (else modification
    times are checked)."""
    try:
        await client_request(ls.client_register_capability_async(watch_registration()),
                             CONFIG_PULL_TIMEOUT)
    except Exception as exc:
        log.info("client/registerCapability failed: %r", exc)


async def shutdown(ls: HeliosLanguageServer, params: None) -> None:
    await ls.release()


def did_open(ls: HeliosLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.project.opened(ls.documents.open(params.text_document))


def did_change(ls: HeliosLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.documents.change(params, ls.encoding)
    doc = ls.documents.get(params.text_document.uri)
    if doc is not None:
        ls.project.changed(doc, params)
    ls.edited(params)


def did_close(ls: HeliosLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)
    ls.project.closed(params.text_document.uri)


def did_change_workspace_folders(
    ls: HeliosLanguageServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    ls.project.folders_changed(params.event)


def did_change_watched_files(
    ls: HeliosLanguageServer, params: types.DidChangeWatchedFilesParams
) -> None:
    ls.project.files_changed(params)


def did_change_configuration(
    ls: HeliosLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    if params.settings:
        config = ls.apply_config(params.settings, "workspace/didChangeConfiguration")
        ls.spawn(ls.sidecar.configure(config.http))
    elif ls.supports_config_pull:  # "settings changed, ask me": pull our section
        ls.spawn(pull_config(ls))


async def pull_config(ls: HeliosLanguageServer) -> None:
    try:
        pulled = await client_request(
            ls.workspace_configuration_async(types.ConfigurationParams(
                items=[types.ConfigurationItem(section=SECTION)])),
            CONFIG_PULL_TIMEOUT,
        )
    except Exception as exc:
        log.info("workspace/configuration failed: %r", exc)
        return
    if pulled and pulled[0]:  # nothing configured: keep the current settings
        config = ls.apply_config(pulled[0], "workspace/configuration")
        await ls.sidecar.configure(config.http)


async def inline_completion(
    ls: HeliosLanguageServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    doc = ls.completable(params.text_document.uri)
    if doc is None:
        return types.InlineCompletionList(items=[])
    context = params.context
    placement = suggestions.inline_placement(
        doc, params.position, ls.encoding, ls.config, context.selected_completion_info,
        name=ls.project.name_of(doc.uri))
    invoked = context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    text = await ls.suggest(doc, placement.inp, invoked=invoked)
    return suggestions.inline_items(placement, text)


async def completion(
    ls: HeliosLanguageServer, params: types.CompletionParams
) -> types.CompletionList:
    doc = ls.completable(params.text_document.uri)
    if doc is None:
        return types.CompletionList(is_incomplete=True, items=[])
    placement = suggestions.completion_placement(doc, params.position, ls.encoding, ls.config,
                                                 name=ls.project.name_of(doc.uri))
    invoked = (params.context is not None
               and params.context.trigger_kind == types.CompletionTriggerKind.Invoked)
    text = await ls.suggest(doc, placement.inp, invoked=invoked)
    return suggestions.completion_items(placement, text, model_name=ls.engine.model_name,
                                        markdown=ls.markdown_docs)


async def status_command(ls: HeliosLanguageServer, *args: Any) -> dict[str, Any]:
    await ls.engine.refresh()  # the shared engine's own counts
    return ls.status()


async def restart_command(ls: HeliosLanguageServer, *args: Any) -> dict[str, Any]:
    """Reload the model (after HELIOS_MODEL or the model file changed)."""
    ls.tell("reloading the model")
    await ls.load_model(restart=True)
    return ls.status()


def create_server(settings: Settings, engine: Engine, *, http: bool) -> HeliosLanguageServer:
    ls = HeliosLanguageServer(settings, engine, http=http)
    ls.feature(types.INITIALIZE)(initialize)
    ls.feature(types.INITIALIZED)(initialized)
    ls.feature(types.SHUTDOWN)(shutdown)
    ls.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    ls.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_workspace_folders)
    ls.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(did_change_watched_files)
    ls.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        inline_completion)
    ls.feature(types.TEXT_DOCUMENT_COMPLETION,
               types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS))(completion)
    ls.command(CMD_STATUS)(status_command)
    ls.command(CMD_RESTART)(restart_command)
    return ls
