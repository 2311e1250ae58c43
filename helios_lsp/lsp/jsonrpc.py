"""Strict JSON-RPC decoding in front of pygls' dispatch: every request gets an answer.

pygls decodes a frame with `json.loads(body, object_hook=structure_message)` and, when that
fails (not JSON, params that do not fit the lsprotocol type, a missing or numeric method,
`"jsonrpc": "1.0"`), only logs: the editor waits forever for its answer. `StrictProtocol`
decodes each frame itself and hands pygls only well-formed messages:

| what arrives                                       | request (has an id)    | notification      |
|----------------------------------------------------|------------------------|-------------------|
| not JSON                                           | -32700, id null        | (same)            |
| not an object, bad id, no id and no method         | -32600, id null        | (same)            |
| `jsonrpc` not "2.0", method missing / not a string | -32600                 | logged, dropped   |
| anything but `initialize`/`exit` before initialize | -32002                 | dropped           |
| anything but `exit` after `shutdown`               | -32600                 | dropped           |
| params that do not structure (types, ranges)       | -32602                 | logged, dropped   |
| a method nobody handles                            | -32601 (pygls)         | logged (pygls)    |

Logs about bad messages are rate-limited and every client string in them is escaped.
A response from the client that cannot be decoded fails the request it answers (so no
server-side waiter hangs) instead of vanishing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
from cattrs import Converter, transform_error
from cattrs.v import format_exception
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
)

from helios_lsp.logsafe import safe
from helios_lsp.lsp.logs import Throttle

log = logging.getLogger(__name__)

E = types.ErrorCodes
_ERROR_TEXT = {
    E.ParseError: "Parse error",
    E.InvalidRequest: "Invalid Request",
    E.InvalidParams: "Invalid params",
    E.ServerNotInitialized: "Server not initialized",
}
_MAX_DETAIL = 300  # characters of detail in an error message sent back


def _valid_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _format(exc: BaseException, target: type | None) -> str:
    # lsprotocol's range validators say what was wrong ("Position.line should be in range
    # [0:2147483647], but was -1."); cattrs' default would only say "invalid value".
    if isinstance(exc, ValueError) and target is None and exc.args:
        return str(exc.args[0])
    return format_exception(exc, target)


def _describe(exc: Exception) -> str:
    """What did not fit, with JSON paths (`... @ $.params.position.line`)."""
    try:
        problems = transform_error(exc, format_exception=_format)
    except Exception:
        problems = [str(exc)]
    return "; ".join(problems) or type(exc).__name__


def _exactly(kind: type) -> Any:
    def structure(value: Any, _: Any) -> Any:
        # bool is an int in Python, an int is a valid JSON number where a float is expected
        if type(value) is kind or (kind is float and type(value) is int):
            return value
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return structure


def strict_converter() -> Converter:
    """lsprotocol's converter, but JSON types must match: cattrs would turn "1", 1.5 and
    true into the integer 1 for a line number, and 5 into the string "5" for a URI."""
    converter = default_converter()
    for kind in (int, float, str, bool):
        converter.register_structure_hook(kind, _exactly(kind))
    return converter


def _has_id_field(message_type: type) -> bool:
    return attrs.has(message_type) and "id" in attrs.fields_dict(message_type)


class StrictProtocol(LanguageServerProtocol):
    """pygls' LSP protocol fed by `handle_frame(body)` instead of its own decoding."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.initialize_received = False
        self._decoder = strict_converter()  # incoming messages only; pygls' for the rest
        self._bad_input = Throttle(log)

    # --- entry point ------------------------------------------------------------

    def handle_frame(self, body: bytes) -> None:
        """Decode one frame body and dispatch it, or answer the error it deserves.
        Never raises: the message loop must outlive any input."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            self._refuse(None, E.ParseError, f"the message is not valid JSON ({exc})",
                         what="a frame")
            return
        try:
            self._handle_object(data)
        except Exception:  # a bug of ours: the request still gets its answer
            log.exception("a message could not be handled")
            if isinstance(data, dict) and "method" in data and _valid_id(data.get("id")):
                self._send_data({"jsonrpc": "2.0", "id": data["id"], "error": {
                    "code": int(E.InternalError), "message": "Internal error"}})

    def _handle_object(self, data: Any) -> None:
        if not isinstance(data, dict):
            kind = "an array (batches are not part of LSP)" if isinstance(data, list) else \
                type(data).__name__
            self._refuse(None, E.InvalidRequest, f"a message must be an object, not {kind}")
            return
        method = data.get("method")
        if "method" not in data and ("result" in data or "error" in data):
            self._take_response(data)
            return
        if "id" in data and not _valid_id(data["id"]):
            self._refuse(None, E.InvalidRequest, "the id must be an integer or a string",
                         what=f"message {safe(data['id'], 40)}")
            return
        msg_id = data.get("id")
        is_request = "id" in data
        what = f"request {safe(msg_id, 40)} {safe(method, 80)}" if is_request else \
            f"notification {safe(method, 80)}"

        problem = None
        if not isinstance(method, str):
            problem = "the method is missing" if method is None else \
                "the method must be a string"
        elif data.get("jsonrpc") != "2.0":
            problem = 'the "jsonrpc" member must be "2.0"'
        if problem is not None:
            if is_request or not isinstance(method, str):  # no request, no notification
                self._refuse(msg_id, E.InvalidRequest, problem, what=what)
            else:
                self._drop(what, problem)
            return

        refusal = self._lifecycle_refusal(method)
        if refusal is not None:
            code, reason = refusal
            if is_request:
                self._refuse(msg_id, code, reason, what=what)
            else:
                log.debug("%s dropped: %s", what, reason)
            return

        message = self._structure(data, method, is_request, what)
        if message is None:
            return
        if method == types.INITIALIZE:
            self.initialize_received = True
        self.handle_message(message)

    # --- checks -----------------------------------------------------------------

    def _lifecycle_refusal(self, method: str) -> tuple[int, str] | None:
        if method == types.EXIT:
            return None
        if self._shutdown:
            return E.InvalidRequest, "the server is shutting down"
        if method == types.INITIALIZE:
            if self.initialize_received:
                return E.InvalidRequest, "initialize may be sent only once"
            return None
        if not self.initialize_received:
            return E.ServerNotInitialized, "the first request must be initialize"
        return None

    def _structure(self, data: dict[str, Any], method: str, is_request: bool,
                   what: str) -> Any | None:
        """The message as pygls dispatches it, or None (answered or dropped)."""
        message_type = self.get_message_type(method)
        if message_type is None:  # a method lsprotocol does not know: pygls answers -32601
            params = data.get("params")
            if is_request:
                return JsonRPCRequestMessage(id=data["id"], method=method, jsonrpc="2.0",
                                             params=params)
            return JsonRPCNotification(method=method, jsonrpc="2.0", params=params)
        if is_request != _has_id_field(message_type):
            kind = "a request" if not is_request else "a notification"
            if is_request:
                self._refuse(data["id"], E.InvalidRequest, f"{method} is {kind}", what=what)
            else:
                self._drop(what, f"{method} is {kind} and needs an id")
            return None
        try:
            return self._decoder.structure(data, message_type)
        except Exception as exc:
            detail = _describe(exc)
            if is_request:
                self._refuse(data["id"], E.InvalidParams, detail, what=what)
            else:
                self._drop(what, f"invalid params: {detail}")
            return None

    def _take_response(self, data: dict[str, Any]) -> None:
        """A response to one of our requests (workspace/configuration, progress...)."""
        msg_id = data.get("id")
        if not _valid_id(msg_id):
            self._drop(f"response {safe(msg_id, 40)}", "the id must be an integer or a string")
            return
        if "error" in data:
            response_type: Any = types.ResponseErrorMessage
        else:
            response_type = self._result_types.pop(msg_id, None) or JsonRPCResponseMessage
        try:
            message = self._decoder.structure({**data, "jsonrpc": "2.0"}, response_type)
        except Exception as exc:
            detail = _describe(exc)
            self._drop(f"response {safe(msg_id, 40)}", detail)
            future = self._request_futures.pop(msg_id, None)
            if future is not None and not future.done():
                future.set_exception(JsonRpcInvalidParams(f"invalid response: {detail}"))
            return
        self.handle_message(message)

    # --- answers ----------------------------------------------------------------

    def _refuse(self, msg_id: Any, code: int, reason: str, *, what: str = "a message") -> None:
        """Answer `msg_id` (null when unknown) with a JSON-RPC error."""
        text = f"{_ERROR_TEXT.get(code, 'Error')}: {safe(reason, _MAX_DETAIL)}"
        self._bad_input.log(logging.WARNING, "%s refused (%d): %s", what, int(code),
                            safe(reason, _MAX_DETAIL))
        # A plain object: lsprotocol's converter would leave out `"id": null`.
        self._send_data({"jsonrpc": "2.0", "id": msg_id,
                         "error": {"code": int(code), "message": text}})

    def _drop(self, what: str, reason: str) -> None:
        self._bad_input.log(logging.WARNING, "%s dropped: %s", what, safe(reason, _MAX_DETAIL))
