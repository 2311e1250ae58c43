"""Any OpenAI-compatible `/v1/completions`: vLLM, TGI, LM Studio, Ollama's `/v1`,
llama-server's `/v1`. FIM prompts are written as text from the model family's template."""

from __future__ import annotations

import math
from typing import Any

from helios_lsp.engine.errors import CompletionFailedError
from helios_lsp.engine.names import NameSteer
from helios_lsp.engine.remote.client import (
    MODEL_NAME_LIMIT,
    Event,
    Piece,
    RemoteEngine,
    RemoteInfo,
)
from helios_lsp.engine.remote.templates import FimTemplate, template_for
from helios_lsp.engine.text_prompt import TextPrompt
from helios_lsp.engine.types import CompletionInput, StopReason
from helios_lsp.logsafe import has_unsafe, sanitize

_TOP_P = 0.95
# OpenAI-style servers do not report their context; a window this size fits every
# current code model, and the server says so if not.
_DEFAULT_N_CTX = 4096
_FINISH = {"stop": StopReason.EOG, "length": StopReason.MAX_TOKENS}


class OpenAIEngine(RemoteEngine):
    kind = "openai"

    @property
    def repo_layout(self) -> bool:  # type: ignore[override]
        return self.template is not None and self.template.repo is not None

    def __init__(self, settings, stats):
        super().__init__(settings, stats)
        self.template: FimTemplate | None = None
        # The model named in requests: the server's own string, byte for byte (info.model
        # is the name shown).
        self.model_id: str | None = None
        # Without /v1 in the URL, the server's API is assumed at /v1 (as Ollama serves it).
        self.api = "" if self.url.endswith("/v1") else "/v1"

    async def describe(self) -> RemoteInfo:
        listing = await self.get_json(self.api + "/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        models = [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []
        served = [m["id"] for m in models if isinstance(m.get("id"), str)]
        model_id = self.settings.engine_model or None  # the user's own choice
        if model_id is None and len(served) == 1:
            model_id = _usable_id(served[0])
        if model_id is None:
            raise CompletionFailedError(
                "set HELIOS_ENGINE_MODEL to the model the engine server should use"
                + (f" (it serves {len(served)})" if served else ""))
        n_ctx = _DEFAULT_N_CTX
        for model in models:
            if model.get("id") == model_id:
                # vLLM says max_model_len; llama-server says meta.n_ctx_train.
                meta = model.get("meta")
                size = model.get("max_model_len") or (
                    meta.get("n_ctx_train") if isinstance(meta, dict) else None)
                if isinstance(size, int) and size >= 256:
                    n_ctx = min(size, self.settings.n_ctx)
        name = sanitize(model_id, MODEL_NAME_LIMIT)
        self.template, reason = template_for(name, self.settings.fim_template)
        self.model_id = model_id
        return RemoteInfo(name, n_ctx, self.template.family if self.template else None, 1,
                          reason)

    def request(self, prompt: TextPrompt, inp: CompletionInput, max_tokens: int,
                temperature: float, heal: str, steer: NameSteer | None = None
                ) -> tuple[str, dict[str, Any]]:
        assert self.info is not None
        if self.template is not None:
            # Other files: in the repository layout (prompt.context) or as comment blocks
            # at the start of the prefix (prompt.context_text).
            text = self.template.render(prompt.context_text + prompt.above, prompt.suffix,
                                        prompt.line, context=prompt.context if self.repo_layout
                                        else (), repo=prompt.repo, path=prompt.path)
            stop = list(self.template.stop)
        else:
            text, stop = prompt.plain(), []
        body: dict[str, Any] = {
            "model": self.model_id, "prompt": text, "max_tokens": max_tokens,
            "temperature": temperature, "top_p": _TOP_P, "stream": True, "logprobs": 1,
            "seed": self.settings.seed,
        }
        if stop:
            body["stop"] = stop
        return self.api + "/completions", body

    def parse(self, event: dict[str, Any]) -> Event:
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            if "usage" in event:  # a usage-only event at the end of some streams
                return Event([])
            raise CompletionFailedError("the engine server sent a malformed answer")
        choice = choices[0]
        text = choice.get("text", "")
        if not isinstance(text, str):
            raise CompletionFailedError("the engine server sent a malformed answer")
        pieces: list[Piece] = []
        logprobs = choice.get("logprobs")
        tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
        values = logprobs.get("token_logprobs") if isinstance(logprobs, dict) else None
        if (isinstance(tokens, list) and isinstance(values, list) and len(tokens) == len(values)
                and "".join(t for t in tokens if isinstance(t, str)) == text):
            for token, value in zip(tokens, values, strict=True):
                prob = (math.exp(min(0.0, value)) if isinstance(value, int | float)
                        and math.isfinite(value) else None)
                if isinstance(token, str) and token:
                    pieces.append(Piece(token, prob))
        elif text:
            pieces.append(Piece(text, None))
        finish = choice.get("finish_reason")
        done = isinstance(finish, str) and bool(finish)
        return Event(pieces, done=done,
                     stop_reason=_FINISH.get(finish, StopReason.EOG) if done else None)


def _usable_id(model_id: str) -> str:
    """The server's only model id, refused when Helios could not show it as it is: what
    /status and the log say must be the model the requests name."""
    if not model_id.strip():
        raise CompletionFailedError("the engine server's model has no name: set "
                                    "HELIOS_ENGINE_MODEL to the model it should use")
    if has_unsafe(model_id) or len(model_id) > MODEL_NAME_LIMIT:
        what = ("control characters" if has_unsafe(model_id)
                else f"{len(model_id)} characters")
        raise CompletionFailedError(
            f"the engine server names its model with {what} "
            f"({sanitize(repr(model_id), 80)}): set HELIOS_ENGINE_MODEL to the model it "
            "should use")
    return model_id
