"""The loaded llama.cpp model and the decoding loop that runs on it.

Only the engine's worker thread calls into this module once the model is loaded:
`Llama` is not thread-safe.

We decode with our own loop rather than `Llama.generate` because we need, per job:
the probability of each produced token (for `confidence`, without `logits_all`),
a cancellation check between prompt chunks and after each token, and the count of
prompt tokens evaluated vs reused from the KV cache.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from helios_lsp.engine.errors import CompletionFailedError, JobCancelledError, ModelError
from helios_lsp.engine.fim import FimTokens, detect_fim
from helios_lsp.engine.kv_states import KvStates
from helios_lsp.engine.model_source import ResolvedModel
from helios_lsp.engine.names import NameSteer
from helios_lsp.engine.text import Unsure, WordGuard, without_last_word
from helios_lsp.engine.types import StopReason
from helios_lsp.settings import Settings

log = logging.getLogger(__name__)

_TOP_K = 40
_TOP_P = 0.95
# Bytes that continue a name (non-ASCII ones too: a name may hold letters of any script).
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$"
                        ) | frozenset(range(0x80, 0x100))


@dataclass
class Decoded:
    """What one decoding run produced, before cleaning."""

    tokens: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # model probability of each produced token
    stop_reason: StopReason | None = None
    evaluated: int = 0
    reused: int = 0

    healed: bytes = b""  # prompt text taken back for token healing; generation re-creates it

    def probs_for(self, kept_chars: int) -> list[float]:
        """Probabilities of the tokens that produced the first `kept_chars` visible chars."""
        probs, produced = [], b""
        for piece, prob in zip(self.pieces, self.probs, strict=True):
            visible = produced[len(self.healed):].decode("utf-8", errors="replace")
            if len(visible) >= kept_chars:
                break
            produced += piece
            if len(produced) > len(self.healed):
                probs.append(prob)
        return probs

    def take_back_word(self) -> None:
        """Drop the tokens of the word the text ends with (from the token it began in),
        unless that would take back part of the healed prompt text."""
        produced = b"".join(self.pieces)
        kept = len(without_last_word(produced.decode("utf-8", "surrogateescape"))
                   .encode("utf-8", "surrogateescape"))
        n, end = 0, 0
        while n < len(self.pieces) and end + len(self.pieces[n]) <= kept:
            end += len(self.pieces[n])
            n += 1
        if end >= len(self.healed):
            del self.tokens[n:], self.pieces[n:], self.probs[n:]

    def text(self) -> str:
        """The generated text after the cursor (the re-created healed part removed)."""
        produced = b"".join(self.pieces)
        if len(produced) < len(self.healed):
            return ""
        return produced[len(self.healed):].decode("utf-8", errors="replace")


@contextlib.contextmanager
def _quiet_native_stderr(enabled: bool):
    """llama.cpp prints load chatter straight to fd 2; hide it unless debugging."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LoadedModel:
    def __init__(self, resolved: ResolvedModel, settings: Settings):
        import llama_cpp  # imported here: loading the native library takes a moment

        self._llama_cpp = llama_cpp
        self.resolved = resolved
        n_ctx = settings.n_ctx
        trained = resolved.info.context_length
        if trained:
            n_ctx = min(n_ctx, trained)
        try:
            with _quiet_native_stderr(not settings.debug):
                self.llm = llama_cpp.Llama(
                    model_path=str(resolved.path),
                    n_ctx=n_ctx,
                    n_batch=min(settings.n_batch, n_ctx),
                    n_threads=settings.n_threads,
                    n_threads_batch=settings.n_threads,
                    seed=settings.seed,
                    verbose=settings.debug,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            # llama-cpp-python raises ValueError("Failed to load model from file: <path>").
            raise ModelError("llama.cpp could not load the model file "
                             f"(architecture {resolved.info.architecture or 'unknown'})") from exc
        self.n_ctx = self.llm.n_ctx()
        self.n_vocab = self.llm.n_vocab()
        self.eval_chunk = settings.eval_chunk
        self.kv_states = KvStates(self.llm, llama_cpp, settings.kv_cache_ram)
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self._pieces: dict[int, bytes] = {}
        # Every token's bytes, for token healing; built at load (~0.3 s per 50k tokens) so
        # no request pays for it.
        pieces = [self.piece(t) for t in range(self.n_vocab)]
        self._by_piece: dict[bytes, list[int]] = {}
        for token, piece in enumerate(pieces):
            if piece:
                self._by_piece.setdefault(piece, []).append(token)
        # Pieces in byte order: the tokens starting with some bytes are one run of it,
        # found by two binary searches instead of a scan of the vocabulary per request.
        order = sorted(range(self.n_vocab), key=pieces.__getitem__)
        self._sorted_pieces = [pieces[t] for t in order]
        self._sorted_ids = np.asarray(order, dtype=np.int64)
        self._longest_piece = max(map(len, pieces), default=0)
        self._rng = np.random.default_rng(settings.seed)
        self.bos: int | None = None
        if self.llm.metadata.get("tokenizer.ggml.add_bos_token", "true") != "false":
            bos = self.llm.token_bos()
            self.bos = bos if bos >= 0 else None
        self._space_prefix = (
            self.llm.metadata.get("tokenizer.ggml.model") == "llama"
            and self.llm.metadata.get("tokenizer.ggml.add_space_prefix", "true") != "false"
        )
        self.fim: FimTokens | None = detect_fim(
            self.llm.metadata, self.single_token, self.token_text
        )
        self.stop_tokens = frozenset(self.fim.stop if self.fim else ())
        # Tokens that may follow a whole name (NameSteer): text not continuing it, or the end.
        self._ends_name = np.fromiter((bool(p) and p[0] not in _NAME_BYTES for p in pieces),
                                      dtype=bool, count=self.n_vocab)
        self._ends_name[[t for t in range(self.n_vocab) if not pieces[t] and self.is_end(t)]] = True

    # --- vocabulary -----------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Plain text to tokens: no BOS, special-token text stays text."""
        if not text:
            return []
        return self.llm.tokenize(text.encode("utf-8", errors="replace"), add_bos=False,
                                 special=False)

    def encode_continuation(self, text: str) -> list[int]:
        """Tokens for text that continues earlier text (the cursor's line after FIM-middle).

        SentencePiece tokenizers put a space before the start of every tokenized text;
        mid-prompt that space is wrong. Tokenize behind a sentinel byte and drop it."""
        if not self._space_prefix or not text:
            return self.encode(text)
        tokens = self.llm.tokenize(b"\x01" + text.encode("utf-8", errors="replace"),
                                   add_bos=False, special=False)
        for i, token in enumerate(tokens[:3]):
            if self.piece(token) == b"\x01":
                return tokens[i + 1:]
        return self.encode(text)

    def single_token(self, text: str) -> int | None:
        ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return ids[0] if len(ids) == 1 else None

    def token_text(self, token: int) -> str:
        if not 0 <= token < self.n_vocab:
            return ""
        return self._llama_cpp.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(256)
            n = self._llama_cpp.llama_token_to_piece(self._vocab, token, buf, 256, 0, False)
            cached = buf.raw[: max(n, 0)]
            self._pieces[token] = cached
        return cached

    def _healing_mask(self, pending: bytes) -> np.ndarray:
        """Token ids whose text agrees with `pending`, the healed bytes not yet re-created:
        tokens starting with it, and tokens that are a prefix of it."""
        starts = np.zeros(self.n_vocab, dtype=bool)
        lo = bisect.bisect_left(self._sorted_pieces, pending)
        hi = bisect.bisect_right(self._sorted_pieces, pending, lo=lo,
                                 key=lambda piece: piece[: len(pending)])
        starts[self._sorted_ids[lo:hi]] = True
        for k in range(1, len(pending)):
            for token in self._by_piece.get(pending[:k], ()):
                starts[token] = True
        return starts

    def _spelling_mask(self, rests: tuple[str, ...]) -> np.ndarray:
        """Token ids that spell on towards one of `rests` (what a name still lacks): a
        piece that begins a rest, or holds a whole rest and then a byte no name has; for
        a name already whole (""), a piece that does not continue it, or the end."""
        allowed = self._ends_name.copy() if "" in rests else np.zeros(self.n_vocab, dtype=bool)
        ids: list[int] = []
        pieces = self._sorted_pieces
        for rest in rests:
            spelled = rest.encode("utf-8")
            if not spelled:
                continue
            for k in range(1, min(len(spelled), self._longest_piece) + 1):
                ids.extend(self._by_piece.get(spelled[:k], ()))
            lo = bisect.bisect_left(pieces, spelled)
            hi = bisect.bisect_right(pieces, spelled, lo=lo, key=lambda p: p[: len(spelled)])
            ids.extend(int(self._sorted_ids[i]) for i in range(lo, hi)
                       if len(pieces[i]) > len(spelled)
                       and pieces[i][len(spelled)] not in _NAME_BYTES)
        allowed[ids] = True
        return allowed

    def _heal_point(self, prompt: list[int]) -> bytes:
        """The bytes of the prompt's last token when generation should re-create it.

        A prompt ending mid-token ("\n    " before `return`, " fo" before `foo`) is
        tokenized unlike anything seen in training; backing off that token and letting
        the model re-create it ("token healing") gives natural continuations."""
        if len(prompt) < 2:
            return b""
        last = prompt[-1]
        if self._llama_cpp.llama_vocab_is_control(self._vocab, last) or last == self.bos:
            return b""
        if self.fim is not None and last in (self.fim.prefix, self.fim.suffix, self.fim.middle):
            return b""
        return self.piece(last)

    def is_end(self, token: int) -> bool:
        return token in self.stop_tokens or bool(self._llama_cpp.llama_vocab_is_eog(self._vocab,
                                                                                     token))

    # --- decoding -------------------------------------------------------------

    def _last_logits(self) -> np.ndarray:
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def cold_tokens(self, prompt: list[int]) -> int:
        """How many tokens of `prompt` would have to be evaluated (none of the KV caches,
        live or saved, holds them)."""
        return len(prompt) - self.kv_states.reusable(
            np.asarray(prompt, dtype=self.llm.input_ids.dtype))

    def _eval_prompt(self, prompt: list[int], out: Decoded,
                     cancelled: Callable[[], bool]) -> None:
        """Bring the KV cache to `prompt`, reusing the longest common prefix with the live
        cache or with a state saved in host memory (kv_states)."""
        llm = self.llm
        reuse = self.kv_states.prepare(np.asarray(prompt, dtype=llm.input_ids.dtype))
        # The logits of the last prompt token are needed: re-run it if all is cached.
        out.reused = reuse = min(reuse, len(prompt) - 1)
        llm.n_tokens = reuse
        todo = prompt[reuse:]
        for i in range(0, len(todo), self.eval_chunk):
            if cancelled():
                raise JobCancelledError("cancelled")
            chunk = todo[i : i + self.eval_chunk]
            llm.eval(chunk)
            out.evaluated += len(chunk)

    def _pick(self, logits: np.ndarray, temperature: float,
              allowed: np.ndarray | None = None) -> tuple[int, float]:
        """Sample a token (among `allowed` if given); return it with the probability the
        model gave it over the whole vocabulary at temperature 1.

        Runs once per generated token, so it stays in float32 and avoids full sorts
        (a float64 softmax over 50k logits alone costs ~1 ms)."""
        peak = float(logits.max())
        if not np.isfinite(peak):  # a broken model (NaN weights) must fail, not emit garbage
            raise CompletionFailedError("the model produced invalid (non-finite) scores")
        z = float(np.exp(logits - peak).sum())
        if not np.isfinite(z):
            raise CompletionFailedError("the model produced invalid (non-finite) scores")
        candidates = logits if allowed is None else np.where(allowed, logits, -np.inf)
        if temperature <= 1e-3:
            best = int(candidates.argmax())
            return best, float(np.exp(logits[best] - peak)) / z
        k = _TOP_K if allowed is None else min(_TOP_K, int(np.count_nonzero(allowed)) or 1)
        top = np.argpartition(candidates, -k)[-k:]
        top_logits = candidates[top].astype(np.float64)
        scaled = np.exp((top_logits - top_logits.max()) / temperature)
        order = np.argsort(-scaled)
        p = scaled[order] / scaled.sum()
        keep = int(np.searchsorted(np.cumsum(p), _TOP_P)) + 1
        p = p[:keep] / p[:keep].sum()
        choice = int(top[order[int(self._rng.choice(keep, p=p))]])
        return choice, float(np.exp(logits[choice] - peak)) / z

    def warm(self, prompt: list[int], cancelled: Callable[[], bool]) -> int:
        """Evaluate all of `prompt` but its last two tokens (which `decode` may take back
        for token healing, and evaluates itself): the KV cache is then ready for a request
        at that place. Returns the tokens evaluated; stops between chunks when cancelled,
        keeping what it did."""
        if len(prompt) < 4:
            return 0
        out = Decoded()
        with contextlib.suppress(JobCancelledError):
            self._eval_prompt(prompt[:-2], out, cancelled)
        return out.evaluated

    def decode(
        self,
        prompt: list[int],
        *,
        max_tokens: int,
        temperature: float,
        time_budget: float,
        cancelled: Callable[[], bool],
        should_stop: Callable[[str], bool],
        min_prob: float = 0.0,
        steer: NameSteer | None = None,
    ) -> Decoded:
        """Evaluate `prompt`, then generate until an end token, `max_tokens`, `time_budget`
        seconds of generation, `should_stop(text so far)`, or (once some text is there) a
        token the model gives less than `min_prob` (a word begun is finished, or taken back).
        With `steer`, the text begins with one of its names (the steered tokens are never
        "unsure": the model chose the likeliest of the allowed ones); the prompt is not
        healed then, the steer spells the name from where the prompt ends.

        Raises JobCancelledError as soon as `cancelled()` turns true."""
        if len(prompt) + max_tokens > self.n_ctx:
            raise CompletionFailedError("the prompt does not fit in the model's context")
        out = Decoded(healed=self._heal_point(prompt) if steer is None else b"")
        if out.healed:
            prompt = prompt[:-1]
        try:
            self._eval_prompt(prompt, out, cancelled)
            # The budget covers generation only: a cold prompt must not eat it.
            deadline = time.monotonic() + time_budget
            produced = b""
            guard = WordGuard()
            for _ in range(max_tokens + (1 if out.healed else 0)):
                allowed, steered = None, False
                if len(produced) < len(out.healed):
                    allowed = self._healing_mask(out.healed[len(produced):])
                elif steer is not None:
                    rests = steer.rests(produced.decode("utf-8", "ignore"))
                    if rests is not None:
                        allowed, steered = self._spelling_mask(rests), True
                token, prob = self._pick(self._last_logits(), temperature, allowed)
                if self.is_end(token):
                    out.stop_reason = StopReason.EOG
                    return out
                piece = self.piece(token)
                verdict = guard.step(produced[-4:].decode("utf-8", "ignore"),
                                     piece[:4].decode("utf-8", "ignore"),
                                     prob < min_prob and len(produced) > len(out.healed)
                                     and not steered)
                if verdict is not Unsure.GO_ON:
                    if verdict is Unsure.TAKE_BACK:
                        out.take_back_word()
                    out.stop_reason = StopReason.UNSURE
                    return out
                out.tokens.append(token)
                out.pieces.append(piece)
                produced += out.pieces[-1]
                out.probs.append(prob)
                if should_stop(out.text()):
                    out.stop_reason = StopReason.CUT
                    return out
                if cancelled():
                    raise JobCancelledError("cancelled")
                if time.monotonic() > deadline:
                    out.stop_reason = StopReason.TIME_BUDGET
                    return out
                self.llm.eval([token])
            out.stop_reason = StopReason.MAX_TOKENS
            return out
        except JobCancelledError as exc:
            exc.evaluated, exc.generated = out.evaluated, len(out.tokens)  # work done before
            raise
        except RuntimeError as exc:  # llama_decode failures surface as RuntimeError
            self.llm.n_tokens = 0  # the KV cache state is unknown now: start afresh
            raise CompletionFailedError("the model failed while generating") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()
