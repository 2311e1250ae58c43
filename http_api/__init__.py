"""The Helios REST API (aiohttp), as documented in the API document.

- `create_app(engine, settings)`: the application, on an engine someone else loads.
- `start_http(engine, settings)` -> `HttpServer` (`.url`, `await .stop()`): serve it on
  settings.host:settings.port; used by the language server to run the sidecar in its loop.
- `http_api.serve.serve(settings)`: `helios serve`.
"""

from http_api.app import create_app
from http_api.server import BindRefusedError, HttpServer, start_http

__all__ = ["BindRefusedError", "HttpServer", "create_app", "start_http"]
