"""Local-only guard on a real server: Host (DNS rebinding), Origin (web pages), and JSON-only
POST bodies (forms), answered 403/415 in the error format before anything else happens."""

from __future__ import annotations

import socket
import uuid

import pytest

from tests.http.conftest import Server, completion, json_headers, read_reply

PATHS = [("GET", "/health"), ("GET", "/status"), ("POST", "/complete"), ("POST", "/restart"),
         ("GET", "/openapi.json"), ("GET", "/no-such-page")]


def assert_forbidden(reply, says: str) -> None:
    assert reply.status == 403, reply
    body = reply.json()
    assert body["error_code"] == "FORBIDDEN"
    assert says in body["detail"]
    assert "Access-Control-Allow-Origin" not in reply.headers


def client() -> dict[str, str]:
    return {"X-Helios-Client": f"guard-{uuid.uuid4().hex[:8]}"}


@pytest.mark.parametrize(("method", "path"), PATHS)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost.evil:{port}",
                                  "127.0.0.1.nip.io:{port}", "", "192.168.1.20:{port}"])
def test_foreign_host_is_refused(tiny_server: Server, method: str, path: str, host: str):
    headers = {**json_headers(), "Host": host.format(port=tiny_server.port)}
    reply = tiny_server.request(method, path, b"{}" if method == "POST" else None, headers)
    assert_forbidden(reply, "the Host header must be localhost")


def test_missing_or_repeated_host_is_refused(tiny_server: Server):
    # HTTP/1.1 without Host, or with two, is malformed HTTP: aiohttp's parser refuses it
    # (400, in plain text) before any application code runs.
    missing = tiny_server.request("GET", "/health", headers={"Host": None})
    assert missing.status == 400 and b"Host" in missing.body
    port = tiny_server.port
    twice = [("Host", f"127.0.0.1:{port}"), ("Host", "evil.example"), ("Connection", "close")]
    repeated = tiny_server.request("GET", "/health", headers=twice)
    assert repeated.status == 400 and b"Host" in repeated.body
    # HTTP/1.0 has no Host at all.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        assert_forbidden(read_reply(raw), "Host")


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "localhost", "LocalHost:{port}"])
def test_loopback_hosts_are_fine(tiny_server: Server, host: str):
    reply = tiny_server.get("/health", headers={"Host": host.format(port=tiny_server.port)})
    assert reply.status == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost:3000",
                                    f"http://127.0.0.1:{8000}", "null", "file://"])
@pytest.mark.parametrize(("method", "path"), PATHS)
def test_browser_origins_are_refused(tiny_server: Server, origin: str, method: str, path: str):
    headers = {**json_headers(), "Origin": origin}
    reply = tiny_server.request(method, path, b"{}" if method == "POST" else None, headers)
    assert_forbidden(reply, "requests from web pages are not allowed")


def test_editor_webviews_may_call(tiny_server: Server):
    origin = "vscode-webview://0a1b2c3d"
    reply = tiny_server.post("/complete", completion("x = ", max_tokens=2),
                             headers={"Origin": origin})
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == origin
    assert "X-Helios-Superseded" in reply.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in reply.headers
    # Errors too, so the webview can read them.
    error = tiny_server.post("/complete", {}, headers={"Origin": "vscode-file://vscode-app"})
    assert error.status == 400
    assert error.headers["Access-Control-Allow-Origin"] == "vscode-file://vscode-app"
    # The CORS preflight a webview sends before a JSON POST.
    preflight = tiny_server.request("OPTIONS", "/complete", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-helios-client"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "X-Helios-Client" in preflight.headers["Access-Control-Allow-Headers"]


def test_no_cors_headers_without_origin(tiny_server: Server):
    reply = tiny_server.get("/health")
    assert reply.status == 200
    assert not any(h.lower().startswith("access-control") for h in reply.headers)


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/jsonp", "application/json-seq", None])
@pytest.mark.parametrize("path", ["/complete", "/restart"])
def test_post_bodies_must_be_json(tiny_server: Server, content_type: str | None, path: str):
    loads = tiny_server.stats()["loads"]
    body = b'{"code": "x", "language": "python", "position": {"line": 0, "character": 1}, ' \
           b'"filename": "a.py"}' if path == "/complete" else b"{}"
    reply = tiny_server.request("POST", path, body, {**client(), "Content-Type": content_type})
    assert reply.status == 415, reply
    assert reply.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert "Content-Type: application/json" in reply.json()["detail"]
    assert tiny_server.stats()["loads"] == loads  # a form cannot restart the server


def test_json_with_charset_is_json(tiny_server: Server):
    reply = tiny_server.post("/complete", completion("x = ", max_tokens=2),
                             headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 200


def test_rebinding_attack_cannot_restart(tiny_server: Server):
    loads = tiny_server.stats()["loads"]
    reply = tiny_server.post("/restart", {}, headers={"Host": "attacker.example:80",
                                                      "Origin": "http://attacker.example"})
    assert_forbidden(reply, "Host")
    assert tiny_server.stats()["loads"] == loads
