"""llama.cpp's own server: `/infill` when its model has FIM tokens, `/completion` with
`cache_prompt` otherwise; `/props` for the model, its context and slots."""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

from helios_lsp.engine.backend import Warmed
from helios_lsp.engine.errors import CompletionFailedError, EngineUnreachableError
from helios_lsp.engine.languages import detect
from helios_lsp.engine.names import NameSteer, gbnf
from helios_lsp.engine.remote.client import (
    MODEL_NAME_LIMIT,
    Event,
    Piece,
    RemoteEngine,
    RemoteInfo,
    read_json,
)
from helios_lsp.engine.text_prompt import TextPrompt
from helios_lsp.engine.types import CompletionInput, Snippet, StopReason
from helios_lsp.logsafe import sanitize

_TOP_K = 40
_TOP_P = 0.95
_STOP_TYPES = {"eos": StopReason.EOG, "word": StopReason.EOG, "limit": StopReason.MAX_TOKENS}


class LlamaServerEngine(RemoteEngine):
    kind = "llama-server"
    heals = True  # a grammar makes the answer start with the backed-off whitespace
    steers = True  # a grammar keeps `module.` on the module's names (engine/names.py)

    @property
    def repo_layout(self) -> bool:  # type: ignore[override]
        """/infill takes other files as `input_extra` and lays them out for its model."""
        return self.info is not None and self.info.fim is not None

    async def describe(self) -> RemoteInfo:
        health = await self.get_json("/health")  # 503 while it loads its model
        if isinstance(health, dict) and health.get("status") not in (None, "ok"):
            raise self.unreachable(f"its status is {sanitize(repr(health['status']), 100)}")
        props = await self.get_json("/props")
        if not isinstance(props, dict):
            raise self.unreachable("/props did not describe a model")
        settings = props.get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if not isinstance(n_ctx, int) or n_ctx < 64:
            raise self.unreachable("/props gave no context size")
        alias, path = props.get("model_alias"), props.get("model_path")
        # llama-server's alias defaults to the model's path: show its file name only. The
        # name is only shown, never sent back: sanitized, whatever the server put in it.
        named = alias if isinstance(alias, str) and alias else path
        shown = sanitize(PurePath(named).name, MODEL_NAME_LIMIT) if isinstance(named, str) else ""
        name = sanitize(self.settings.engine_model or shown or "llama-server model",
                        MODEL_NAME_LIMIT)
        slots = props.get("total_slots")
        fim = await self._supports_infill()
        reason = ("its model has FIM tokens: /infill" if fim else
                  "its model has no FIM tokens: /completion with the code before the cursor")
        return RemoteInfo(name, n_ctx, "llama-server" if fim else None,
                          slots if isinstance(slots, int) and slots > 0 else 1, reason)

    async def _supports_infill(self) -> bool:
        """/props does not say; an empty /infill does (it refuses models without FIM)."""
        try:
            async with self._client().post(
                    self.url + "/infill",
                    json={"input_prefix": "", "input_suffix": "", "n_predict": 0}) as r:
                if r.status in (502, 503, 504):
                    raise self.unreachable(f"it answered {r.status}")
                if r.status == 200:  # its answer is not needed (nor read)
                    return True
                body = await read_json(r)
        except EngineUnreachableError:
            raise
        except Exception as exc:
            raise self.unreachable(exc) from None
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message", "") if isinstance(error, dict) else ""
        if "not supported" in str(message):
            return False
        raise CompletionFailedError("the engine server's /infill answered an unexpected error")

    async def warm(self, inp: CompletionInput) -> Warmed:
        """A request for no tokens with `cache_prompt`: the slot keeps the prompt's KV."""
        if self.info is None or self._builder is None:
            return Warmed(0, False)
        # The prompt generate() will send, without what it backs off for healing.
        max_tokens = min(inp.max_tokens, max(1, self.info.n_ctx // 2))
        prompt, _ = self.prompt_for(inp, detect(inp.language, inp.filename), max_tokens)
        path, body = self.request(prompt, inp, 0, 0.0, "")
        try:
            async with self._client().post(self.url + path,
                                           json={**body, "stream": False, "n_probs": 0}) as r:
                answer = await read_json(r) if r.status == 200 else None
        except Exception:  # warming is best effort: the request itself reports failures
            return Warmed(0, False)
        if not isinstance(answer, dict):
            return Warmed(0, False)
        timings = answer.get("timings")
        evaluated = timings.get("prompt_n") if isinstance(timings, dict) else None
        return Warmed(evaluated if isinstance(evaluated, int) else 0, True)

    def request(self, prompt: TextPrompt, inp: CompletionInput, max_tokens: int,
                temperature: float, heal: str, steer: NameSteer | None = None
                ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "n_predict": max_tokens, "temperature": temperature, "top_k": _TOP_K,
            "top_p": _TOP_P, "cache_prompt": True, "stream": True, "n_probs": 1,
            "timings_per_token": True,  # prompt tokens evaluated and cached, early
            "seed": self.settings.seed,
        }
        if heal:  # a newline, spaces and tabs: GBNF escapes for the first and last
            literal = heal.replace("\n", "\\n").replace("\t", "\\t")
            body["grammar"] = 'root ::= "' + literal + '" [^\\x00]*'
        elif steer is not None:  # after `module.`: one of the module's names
            body["grammar"] = gbnf(steer)
        if self.info is not None and self.info.fim is not None:
            # The cursor's line goes after FIM-middle (`prompt`): typing on a line keeps
            # everything before it in the server's cache.
            return "/infill", {**body, "input_prefix": prompt.above,
                               "input_suffix": prompt.suffix,
                               "input_extra": [extra(s) for s in prompt.context],
                               "prompt": prompt.line}
        return "/completion", {**body, "prompt": prompt.plain()}

    def parse(self, event: dict[str, Any]) -> Event:
        content = event.get("content", "")
        if not isinstance(content, str):
            raise CompletionFailedError("the engine server sent a malformed answer")
        prob = None
        probs = event.get("completion_probabilities")
        if isinstance(probs, list) and probs and isinstance(probs[0], dict):
            logprob = probs[0].get("logprob")
            if isinstance(logprob, int | float) and math.isfinite(logprob):
                prob = math.exp(min(0.0, logprob))
        pieces = [Piece(content, prob)] if content else []
        done = event.get("stop") is True
        timings = event.get("timings") if isinstance(event.get("timings"), dict) else {}
        evaluated, reused = timings.get("prompt_n"), timings.get("cache_n")
        stop = _STOP_TYPES.get(str(event.get("stop_type")), StopReason.EOG) if done else None
        return Event(
            pieces, done=done, stop_reason=stop,
            evaluated=evaluated if isinstance(evaluated, int) else None,
            reused=reused if isinstance(reused, int) else None,
        )


def extra(snippet: Snippet) -> dict[str, str]:
    """One `input_extra` chunk: llama-server writes the file separator token, the file name
    and a line break, then the text (the repository layout, for models that have it)."""
    text = snippet.text if snippet.text.endswith("\n") else snippet.text + "\n"
    return {"filename": snippet.path, "text": text}
