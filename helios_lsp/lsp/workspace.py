"""The editor's workspace, told to the engine's sources of context from other files.

The engine (engine/crossfile.py, engine/context/) chooses what goes in the prompt; this
module only passes on what the language server hears: the workspace folders (initialize,
workspace/didChangeWorkspaceFolders), files changed on disk (workspace/didChangeWatchedFiles,
registered when the client can watch for us; otherwise the index checks modification
times), and the open documents with where they are edited (their text is the editor's
buffer, never the file on disk).

The client's `context` setting turns it off ("context": false) or keeps open documents
and recent edits but does not read the workspace ("context": {"workspace": false}).
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types

from helios_lsp.engine import Engine
from helios_lsp.lsp.config import ContextConfig
from helios_lsp.lsp.documents import TextDocument

log = logging.getLogger(__name__)

# The files worth watching: those the index reads (the languages Helios knows) and the
# ignore files that decide what it reads.
WATCHED = "**/*.{py,js,jsx,mjs,cjs,ts,tsx,java,c,h,cc,cpp,cxx,hpp,hh,go,rs,html,css,json}"
IGNORE_FILES = "**/.gitignore"
WATCH_REGISTRATION = "helios-context-files"


def file_path(uri: str) -> Path | None:
    """The local file a `file:` URI names (None for other schemes: untitled, remote)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


class Workspace:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.folders: dict[str, Path] = {}  # URI -> local directory
        self.config = ContextConfig()
        self._documents: dict[str, TextDocument] = {}  # what was told to the sources

    @property
    def enabled(self) -> bool:
        return self.engine.crossfile.enabled  # the process's budget and the client's setting

    # --- folders --------------------------------------------------------------------------

    def start(self, params: types.InitializeParams) -> None:
        """The folders the client opened with (or its root), at initialize."""
        folders = params.workspace_folders or []
        if not folders and params.root_uri:
            folders = [types.WorkspaceFolder(uri=params.root_uri, name="")]
        for folder in folders:
            path = file_path(folder.uri)
            if path is not None:
                self.folders[folder.uri] = path
        self._tell_folders()

    def folders_changed(self, event: types.WorkspaceFoldersChangeEvent) -> None:
        for folder in event.removed:
            self.folders.pop(folder.uri, None)
        for folder in event.added:
            path = file_path(folder.uri)
            if path is not None:
                self.folders[folder.uri] = path
        self._tell_folders()

    def _tell_folders(self) -> None:
        if not self.enabled:
            return
        self.engine.crossfile.forget()  # blocks may hold files of a folder now gone
        sources = self.engine.crossfile.sources
        sources.workspace_enabled = self.config.workspace
        sources.set_folders(list(self.folders.values()) if self.config.workspace else [])

    def files_changed(self, params: types.DidChangeWatchedFilesParams) -> None:
        if not self.enabled or not self.config.workspace:
            return
        changed, deleted = [], []
        for event in params.changes:
            path = file_path(event.uri)
            if path is None:
                continue
            (deleted if event.type == types.FileChangeType.Deleted else changed).append(path)
        sources = self.engine.crossfile.sources
        if changed:
            sources.files_changed(changed)
        if deleted:
            sources.files_deleted(deleted)

    def name_of(self, uri: str) -> str:
        """A document's path relative to the workspace folder that holds it, else its file
        name: how prompts name files (the same for the current file and the others)."""
        path = file_path(uri)
        if path is not None:
            for folder in sorted(self.folders.values(), key=lambda p: -len(p.parts)):
                if path.is_relative_to(folder):
                    return path.relative_to(folder).as_posix()
        return posixpath.basename(unquote(urlparse(uri).path))

    # --- settings ---------------------------------------------------------------------------

    def configure(self, config: ContextConfig) -> None:
        """Take the client's `context` setting: sources start or stop being told."""
        before = (self.config.enabled, self.config.workspace)
        self.config = config
        if (config.enabled, config.workspace) == before:
            return
        crossfile = self.engine.crossfile
        if not config.enabled:
            if crossfile.enabled:  # forget what was told (the documents stay known here)
                for uri in self._documents:
                    crossfile.sources.document_closed(uri)
                crossfile.sources.set_folders([])
            crossfile.allowed = False
            return
        crossfile.allowed = True
        self._tell_folders()
        for doc in list(self._documents.values()):
            self.opened(doc)

    # --- open documents -------------------------------------------------------------------

    def opened(self, doc: TextDocument) -> None:
        self._documents[doc.uri] = doc
        if self.enabled:
            self.engine.crossfile.sources.document_opened(
                doc.uri, file_path(doc.uri), self.name_of(doc.uri), doc.language_id, doc.text)

    def changed(self, doc: TextDocument, params: types.DidChangeTextDocumentParams) -> None:
        if not self.enabled or doc.uri not in self._documents:
            return
        last = params.content_changes[-1] if params.content_changes else None
        line = last.range.start.line if isinstance(
            last, types.TextDocumentContentChangePartial) else None
        self.engine.crossfile.sources.document_changed(doc.uri, doc.text, line)

    def closed(self, uri: str) -> None:
        if self._documents.pop(uri, None) is not None and self.engine.crossfile.enabled:
            self.engine.crossfile.sources.document_closed(uri)


def watch_registration() -> types.RegistrationParams:
    """Ask the client to report changes to the files the index reads."""
    return types.RegistrationParams(registrations=[types.Registration(
        id=WATCH_REGISTRATION, method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=[
            types.FileSystemWatcher(glob_pattern=WATCHED),
            types.FileSystemWatcher(glob_pattern=IGNORE_FILES),
        ]))])
