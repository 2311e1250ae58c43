"""Reading a request body into a model: JSON only, strictly parsed, validated.

Python's `json` accepts things JSON does not (NaN, Infinity, numbers that overflow to
infinity) and silently keeps the last of duplicate keys; each of these is refused here with a
400 that says what was wrong. (Lone surrogates in strings are refused by the schemas.)
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from http_api.errors import ApiError, ErrorCode, invalid_request

_MAX_REPORTED_ERRORS = 4
_MAX_NAME_CHARS = 40

M = TypeVar("M", bound=BaseModel)


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number is too large (it would be infinite)")
    return value


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"the field {_name(key)} appears twice")
            seen.add(key)
    return obj


def parse_json(body: bytes) -> Any:
    """Strict JSON from UTF-8 bytes; raises a 400 ApiError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_request("the request body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                          object_pairs_hook=_object_without_duplicates)
    except _Refused as exc:
        raise invalid_request(f"the request body is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise invalid_request(f"the request body is not valid JSON: {exc.msg} "
                              f"(line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise invalid_request("the request body is nested too deeply") from None
    except ValueError:  # an integer with thousands of digits
        raise invalid_request("the request body contains a number too large to read") from None


def _name(key: object) -> str:
    """A field name fit to quote back: short, and printable."""
    text = str(key)
    if len(text) > _MAX_NAME_CHARS:
        text = text[:_MAX_NAME_CHARS] + "..."
    return ascii(text)


def describe(err: ValidationError) -> str:
    """Pydantic's errors as one line: `position.line: Input should be ...; ...`."""
    parts = []
    for e in err.errors(include_url=False, include_input=False)[:_MAX_REPORTED_ERRORS]:
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown field {_name(loc)}")
        elif e["type"] == "model_type":
            parts.append(f"{loc}: should be a JSON object")
        else:
            parts.append(f"{loc}: {e['msg']}")
    more = err.error_count() - _MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "invalid request: " + "; ".join(parts)


def check_json_content_type(request: web.Request) -> None:
    """POST bodies must be declared JSON: forms and `text/plain` (which browsers send
    cross-site without a preflight) are refused with 415."""
    if request.content_type != "application/json":
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                       "the request body must be JSON: send Content-Type: application/json")


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The whole body, which must arrive within `timeout` seconds: a client that sends it
    a byte at a time must not hold a connection (and an open file) for long."""
    try:
        async with asyncio.timeout(timeout):
            return await request.read()  # aiohttp raises 413 past client_max_size
    except TimeoutError:
        raise ApiError(408, ErrorCode.REQUEST_TIMEOUT,
                       f"the request body did not arrive within {timeout:g} s",
                       close=True) from None


async def read_model(request: web.Request, model: type[M], timeout: float, *,
                     optional: bool = False) -> M:
    """The validated body. With `optional`, an empty body counts as `{}`."""
    check_json_content_type(request)
    body = await read_body(request, timeout)
    if optional and not body.strip():
        return model()
    data = parse_json(body)
    if not isinstance(data, dict):
        raise invalid_request("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(describe(exc)) from None
