"""What every engine server shares: the connection, its failures, and the streaming loop
that applies Helios's stopping rules token by token.

A cancelled or superseded job closes its connection: the server sees the client go and
stops generating. Server failures become engine errors with details safe to show (no URL
credentials, no key): unreachable or loading -> EngineUnreachableError (503 over HTTP,
and the engine probes until it is back); anything else -> CompletionFailedError.

An engine server may be a shared box: what it says is treated like what a client sends.
A string of its that Helios keeps or shows (its model's name, a value quoted in an error)
is sanitized where it comes in (`logsafe.sanitize`); the rest of what it says about its
errors goes to the log only, through `safe`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from helios_lsp.engine.backend import BackendInfo, TaskBackend, confidence_of
from helios_lsp.engine.errors import CompletionFailedError, EngineUnreachableError
from helios_lsp.engine.languages import Language
from helios_lsp.engine.names import NameSteer, steer_for
from helios_lsp.engine.postprocess import Cleaner
from helios_lsp.engine.stats import EngineStats
from helios_lsp.engine.text import Unsure, WordGuard, without_last_word
from helios_lsp.engine.text_prompt import TextPrompt, TextPromptBuilder
from helios_lsp.engine.types import CompletionInput, CompletionOutput, StopReason
from helios_lsp.logsafe import safe, sanitize
from helios_lsp.settings import Settings

log = logging.getLogger(__name__)

_CONNECT_SECONDS = 3.0
# A cold prompt on a big model may take a while before its first token.
_FIRST_TOKEN_SECONDS = 60.0
_PROBE_SECONDS = 5.0
_MAX_LINE = 1 << 20  # one streamed event, at most
_MAX_DOCUMENT = 4 << 20  # /props, /v1/models: a list of thousands of models fits
# A model's name as a server gives it, at most (a Hugging Face id or a file path fits).
MODEL_NAME_LIMIT = 512
_WHY = {"ClientConnectorError": "connection refused", "TimeoutError": "no answer in time",
        "ServerDisconnectedError": "it closed the connection"}


def public_url(url: str) -> str:
    """`url` without user, password, query, fragment or final slash: safe to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class TooLongError(ValueError):
    """An answer longer than Helios reads."""


async def read_json(response: aiohttp.ClientResponse, limit: int = _MAX_DOCUMENT) -> Any:
    """A (non-streamed) answer's JSON, read up to `limit` bytes. ValueError when it is not
    JSON or nested too deeply to decode; TooLongError beyond `limit`."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > limit:
            raise TooLongError(f"more than {limit} bytes")
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# What a server says it serves: model (sanitized: it may come from the server), context,
# FIM, slots, and why this prompt mode.
RemoteInfo = BackendInfo


@dataclass
class Generated:
    """What the server produced, already cut where Helios's rules say."""

    text: str = ""
    pieces: list[tuple[int, float]] = field(default_factory=list)  # (chars so far, prob)
    stop_reason: StopReason | None = None
    evaluated: int = 0
    reused: int = 0
    context_files: tuple[str, ...] = ()  # whose snippets the prompt held

    def probs_for(self, kept_chars: int) -> list[float]:
        probs = []
        for end, prob in self.pieces:
            probs.append(prob)
            if end >= kept_chars:
                break
        return probs


@dataclass(frozen=True)
class Piece:
    text: str
    prob: float | None  # the model's probability of this token, when the server says


@dataclass
class Event:
    pieces: list[Piece]
    done: bool = False
    stop_reason: StopReason | None = None
    evaluated: int | None = None
    reused: int | None = None


class RemoteEngine(TaskBackend, ABC):
    kind = "remote"
    # Whether the server can be made to start its answer with given text (see generate).
    heals = False
    steers = False  # the request keeps `module.` on the module's names (engine/names.py)

    def __init__(self, settings: Settings, stats: EngineStats):
        assert settings.engine_url is not None
        super().__init__(settings, stats)
        parts = urlsplit(settings.engine_url)
        # Credentials in the URL (a proxy's basic auth) are sent as such, never shown.
        self._basic = (aiohttp.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
                       if parts.username and settings.engine_api_key is None else None)
        self.url = public_url(settings.engine_url)
        self.public_url = self.url
        self._builder: TextPromptBuilder | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- connection ------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        key = self.settings.engine_api_key
        return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers(), auth=self._basic, read_bufsize=_MAX_LINE,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_SECONDS))
        return self._session

    def unreachable(self, why: str | BaseException) -> EngineUnreachableError:
        if isinstance(why, BaseException):
            why = _WHY.get(type(why).__name__, "it did not answer")
        return EngineUnreachableError(f"the engine server at {self.public_url} is not "
                                      f"reachable ({sanitize(why, 300)})")

    async def get_json(self, path: str) -> Any:
        """GET a small JSON document; unreachable, loading (503) or garbage -> errors."""
        try:
            async with self._client().get(
                    self.url + path, timeout=aiohttp.ClientTimeout(total=_PROBE_SECONDS)) as r:
                if r.status == 503:
                    raise self.unreachable("it is loading its model")
                if r.status in (401, 403):
                    raise CompletionFailedError("the engine server refused Helios's API key "
                                                "(HELIOS_ENGINE_API_KEY)")
                if r.status >= 400:
                    raise self.unreachable(f"{path} answered {r.status}")
                return await read_json(r)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self.unreachable(exc) from None
        except TooLongError:
            raise self.unreachable(f"{path} answered more than {_MAX_DOCUMENT >> 20} MiB") \
                from None
        except ValueError:
            raise self.unreachable(f"{path} did not answer JSON") from None

    async def connect(self, *, restart: bool = False) -> str:
        """Ask the server what it serves; raises EngineUnreachableError while it cannot.
        (`restart` changes nothing: Helios cannot reload another server's model.)"""
        self.info = await self.describe()
        self._builder = TextPromptBuilder(self.info.n_ctx, self.settings.prefix_lines,
                                          self.settings.suffix_lines,
                                          context_tokens=self.settings.context_tokens,
                                          context_prefix_lines=self.settings.context_prefix_lines)
        return f"{self.kind} at {self.public_url}; {self.info.prompt_mode}"

    def report(self) -> dict[str, Any]:
        return {**super().report(), "engine_url": self.public_url, "model_source": self.kind}

    async def close(self) -> None:
        await super().close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- what each kind of server does differently ---------------------------------

    @abstractmethod
    async def describe(self) -> RemoteInfo: ...

    async def warm(self, inp: CompletionInput) -> int:
        """Have the server evaluate the prompt for `inp` ahead of a request; the prompt
        tokens it evaluated (0 where the server offers no way)."""
        return 0

    @abstractmethod
    def request(self, prompt: TextPrompt, inp: CompletionInput, max_tokens: int,
                temperature: float, heal: str, steer: NameSteer | None = None
                ) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) of a streaming completion request whose answer starts with
        `heal`, and then one of `steer`'s names (each only asked of servers that can:
        `heals`, `steers`)."""

    @abstractmethod
    def parse(self, event: dict[str, Any]) -> Event: ...

    # --- generation ---------------------------------------------------------------

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events (`data: {...}` lines) as JSON objects."""
        async for raw in response.content:
            line = raw.strip()
            if not line or line.startswith(b":"):
                continue
            if line.startswith(b"data:"):
                line = line[5:].strip()
            if line == b"[DONE]":
                return
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, or nested too deeply to decode
                raise CompletionFailedError("the engine server sent a malformed answer") from None
            if not isinstance(event, dict):
                raise CompletionFailedError("the engine server sent a malformed answer")
            if "error" in event:
                log.warning("engine server error: %s", safe(str(event["error"]), 300))
                raise CompletionFailedError("the engine server reported an error")
            yield event

    def prompt_for(self, inp: CompletionInput, lang: Language,
                   max_tokens: int) -> tuple[TextPrompt, str]:
        """The prompt for `inp`, and the text backed off its end that the answer must
        re-create first ("" when nothing is, or the server cannot be made to)."""
        assert self.info is not None and self._builder is not None
        prompt = self._builder.build(inp.prefix, inp.suffix, lang, inp.filename, max_tokens,
                                     fim=self.info.fim is not None, first_line=inp.first_line,
                                     cut=inp.cut, context=inp.context,
                                     repo_layout=self.repo_layout)
        # A prompt ending in indentation ends mid-token ("\n    " before `return`), and
        # models answer it poorly: back off the whitespace and have the server write it
        # again (token healing, as far as a server that takes text allows); it is then
        # taken off the suggestion.
        heal = prompt.line[len(prompt.line.rstrip(" \t")):] if self.heals else ""
        if heal:
            prompt = replace(prompt, line=prompt.line[: -len(heal)])
            if not prompt.line and prompt.above.endswith("\n"):
                # On an indented blank line, "\n" + indentation is one token: back off both.
                heal = "\n" + heal
                prompt = replace(prompt, above=prompt.above[:-1])
        return prompt, heal

    # Whether the server's model takes other files in its repository-level layout (then
    # TextPrompt.context_text stays empty and the request lays out `context` itself).
    repo_layout = False

    async def run(self, inp: CompletionInput, lang: Language,
                  cleaner: Cleaner) -> CompletionOutput:
        started = time.perf_counter()
        generated = await self.generate(
            inp, lang, cleaner, max_tokens=inp.max_tokens,
            min_prob=self.settings.min_token_prob, time_budget=self.settings.time_budget)
        text, cut_reason = cleaner.finish(generated.text)
        return CompletionOutput(
            text=text, confidence=confidence_of(text, generated.probs_for(len(text))),
            prompt_tokens=generated.evaluated + generated.reused,
            evaluated_tokens=generated.evaluated, reused_tokens=generated.reused,
            generated_tokens=len(generated.pieces),
            stop_reason=cut_reason or generated.stop_reason,
            seconds=time.perf_counter() - started,
            context_files=generated.context_files)

    async def generate(self, inp: CompletionInput, lang: Language, cleaner: Cleaner, *,
                       max_tokens: int, min_prob: float, time_budget: float) -> Generated:
        """Stream a completion, stopping as soon as Helios's rules say the answer is known."""
        if self.info is None or self._builder is None:
            raise self.unreachable("not connected yet")
        max_tokens = min(max_tokens, max(1, self.info.n_ctx // 2))
        prompt, heal = self.prompt_for(inp, lang, max_tokens)
        steer = steer_for(inp.prefix, inp.context) if self.steers else None
        path, body = self.request(prompt, inp, max_tokens, inp.temperature, heal, steer)
        out = Generated(context_files=tuple(dict.fromkeys(s.path for s in prompt.context)))
        raw = ""
        received = 0
        guard = WordGuard()
        try:
            async with self._client().post(self.url + path, json=body) as response:
                await self._check(response)
                events = self._events(response).__aiter__()
                deadline: float | None = None
                while True:
                    # Before the first token the server evaluates the prompt; after it, the
                    # generation budget bounds a stream that stalls.
                    wait = _FIRST_TOKEN_SECONDS if deadline is None else max(
                        0.0, deadline - time.monotonic()) + 1.0
                    try:
                        async with asyncio.timeout(wait):
                            payload = await events.__anext__()
                    except StopAsyncIteration:
                        raise CompletionFailedError(
                            "the engine server's answer ended early") from None
                    except TimeoutError:
                        if deadline is not None and time.monotonic() >= deadline:
                            out.stop_reason = StopReason.TIME_BUDGET
                            return out
                        raise CompletionFailedError(
                            "the engine server stopped answering") from None
                    event = self.parse(payload)
                    if event.evaluated is not None:
                        out.evaluated = event.evaluated
                    if event.reused is not None:
                        out.reused = event.reused
                    for piece in event.pieces:
                        if deadline is None:
                            deadline = time.monotonic() + time_budget
                        steered = steer is not None and steer.rests(out.text) is not None
                        verdict = guard.step(out.text, piece.text, bool(
                            piece.prob is not None and piece.prob < min_prob
                            and out.text.strip() and not steered))
                        if verdict is not Unsure.GO_ON:
                            if verdict is Unsure.TAKE_BACK:
                                out.text = without_last_word(out.text)
                                out.pieces = [p for p in out.pieces if p[0] <= len(out.text)]
                            out.stop_reason = StopReason.UNSURE
                            return out
                        raw += piece.text
                        received += 1
                        if len(raw) <= len(heal) and heal.startswith(raw):
                            continue  # still re-creating the whitespace backed off
                        if not raw.startswith(heal):  # it does not fit the cursor's place
                            out.stop_reason = StopReason.UNSURE
                            return out
                        out.text = raw[len(heal):]
                        out.pieces.append((len(out.text), 1.0 if piece.prob is None
                                           else piece.prob))
                        if cleaner.cut(out.text) is not None:
                            out.stop_reason = StopReason.CUT
                            return out
                        if received >= max_tokens:
                            out.stop_reason = StopReason.MAX_TOKENS
                            return out
                    if event.done:
                        out.stop_reason = event.stop_reason or StopReason.EOG
                        return out
                    if deadline is not None and time.monotonic() >= deadline:
                        out.stop_reason = StopReason.TIME_BUDGET
                        return out
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if received == 0:
                raise self.unreachable(exc) from None
            raise CompletionFailedError("the engine server closed the connection") from None
        except (aiohttp.ClientPayloadError, HttpProcessingError, ValueError) as exc:
            # (HttpProcessingError: a line over _MAX_LINE, among others; its text quotes it.)
            log.warning("engine server answer unreadable: %s", type(exc).__name__)
            raise CompletionFailedError("the engine server sent a malformed answer") from None

    async def _check(self, response: aiohttp.ClientResponse) -> None:
        if response.status == 200:
            return
        if response.status in (502, 503, 504):
            raise self.unreachable(f"it answered {response.status}")
        if response.status in (401, 403):
            raise CompletionFailedError("the engine server refused Helios's API key "
                                        "(HELIOS_ENGINE_API_KEY)")
        text = (await response.content.read(500)).decode("utf-8", "replace")
        log.warning("engine server answered %d: %s", response.status, safe(text, 300))
        raise CompletionFailedError(f"the engine server answered {response.status}")
