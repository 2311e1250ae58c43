"""The API key (issue 9, item 8), on real `helios serve` processes.

Beyond loopback a key is required; on loopback it is optional, and required once set.
Requests carry `Authorization: Bearer <key>`; without it (or with another key) every
endpoint but /health answers 401 UNAUTHORIZED in the error format. The key never reaches
a log, /status or an error.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helios_lsp.settings import Settings
from http_api.auth import authorized, load_api_key
from http_api.errors import BindRefusedError
from tests.conftest import free_port
from tests.http.conftest import (
    STARTUP_SECONDS,
    Reply,
    Server,
    completion,
    json_body,
    json_headers,
    server_env,
    start,
)

KEY = "hk_" + "Zq8w3Lr7Tn2Vx5Ys9Pb4Kd6Jm1Hc0Ge"  # 35 characters


def bearer(key: str = KEY) -> dict[str, str | None]:
    return {"Authorization": f"Bearer {key}"}


def assert_unauthorized(reply: Reply) -> None:
    assert reply.status == 401, reply
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    body = reply.json()
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert body["error_code"] == "UNAUTHORIZED"
    assert "Authorization: Bearer" in body["detail"]
    assert KEY not in reply.body.decode()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Server]:
    """Loopback with a key set, and debug logs (the access log too): the key must still
    appear nowhere."""
    server = start(tmp_path_factory.mktemp("keyed"), model=str(tiny_model), api_key=KEY,
                   debug="1")
    yield server
    assert server.stop() == 0, server.log()


def test_without_the_key_every_endpoint_but_health_is_401(keyed: Server):
    for method, path in (("GET", "/status"), ("GET", "/openapi.json"), ("POST", "/complete"),
                         ("POST", "/restart"), ("GET", "/no-such-endpoint")):
        body = json_body(completion("x = ")) if method == "POST" else None
        headers = json_headers() if method == "POST" else {}
        assert_unauthorized(keyed.request(method, path, body, headers))
    health = keyed.get("/health")
    assert health.status == 200 and health.json()["status"] == "healthy"


@pytest.mark.parametrize("header", [
    f"Bearer {KEY[:-1]}", f"Bearer {KEY}x", f"Basic {KEY}", KEY, "Bearer", "Bearer ",
    f"Bearer {KEY[:-1]}\u00e9".encode().decode("latin-1"),
])
def test_a_wrong_key_is_401(keyed: Server, header: str):
    reply = keyed.request("GET", "/status", headers={"Authorization": header})
    assert_unauthorized(reply)
    assert "the API key is wrong" in reply.json()["detail"]


def test_the_right_key_is_served(keyed: Server):
    status = keyed.get("/status", headers=bearer())
    assert status.status == 200, status
    assert status.json()["auth_required"] is True
    reply = keyed.post("/complete", completion("x = ", max_tokens=2), headers=bearer())
    assert reply.status == 200, reply
    lower = keyed.get("/status", headers={"Authorization": f"bearer  {KEY} "})
    assert lower.status == 200  # the scheme is case-insensitive, spaces around are fine


def test_a_webview_may_send_the_key(keyed: Server):
    preflight = keyed.request("OPTIONS", "/complete", headers={
        "Origin": "vscode-webview://abc", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers


def test_the_key_is_in_no_log_and_not_in_status(keyed: Server):
    status = keyed.get("/status", headers=bearer())
    assert status.json()["auth_required"] is True  # all /status says of the key
    assert KEY not in status.body.decode()
    keyed.get("/status", headers={"Authorization": f"Bearer {KEY}-wrong"})
    assert "aiohttp.access" in keyed.log()  # the access log is on, and...
    assert KEY not in keyed.log()  # ...no key, right or wrong, is in it


def run_serve(tmp: Path, *args: str, **helios: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helios_lsp", "serve", "--port", str(free_port()), *args],
        env=server_env(tmp, **helios), capture_output=True, text=True, timeout=STARTUP_SECONDS)


def test_listening_beyond_loopback_without_a_key_is_refused_at_start(tmp_path: Path):
    proc = run_serve(tmp_path, "--host", "0.0.0.0", "--allow-remote")
    assert proc.returncode == 2
    assert "an API key is required: set HELIOS_API_KEY or HELIOS_API_KEY_FILE" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(("helios", "says"), [
    ({"api_key": "short"}, "must be 16 to 4096 visible ASCII characters"),
    ({"api_key": "with a space in the middle"}, "without spaces"),
    ({"api_key": KEY, "api_key_file": "/nonexistent"}, "set only one of them"),
    ({"api_key_file": "/nonexistent/key"}, "cannot read the API key file /nonexistent/key"),
])
def test_an_unusable_key_is_refused_at_start(tmp_path: Path, helios: dict[str, str], says: str):
    proc = run_serve(tmp_path, **helios)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr
    assert helios.get("api_key", "\0") not in proc.stderr  # the value is never echoed


def test_a_key_file_others_can_read_is_refused(tmp_path: Path):
    key_file = tmp_path / "helios.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o644)
    proc = run_serve(tmp_path, api_key_file=str(key_file))
    assert proc.returncode == 2
    assert f"can be read or written by other users (mode 0644): run `chmod 600 {key_file}`" \
        in proc.stderr
    assert KEY not in proc.stderr


def test_remote_with_a_key_file(tmp_path: Path, tiny_model: Path):
    """The supported way to go remote: 0.0.0.0, HELIOS_ALLOW_REMOTE, a private key file."""
    key_file = tmp_path / "helios.key"
    key_file.write_text(KEY + "\n")  # the trailing newline an editor adds is fine
    key_file.chmod(0o600)
    server = start(tmp_path, model=str(tiny_model), host="0.0.0.0", allow_remote="1",
                   api_key_file=str(key_file))
    try:
        assert "every request but /health needs the API key" in server.log()
        assert_unauthorized(server.get("/status"))
        assert server.get("/status", headers=bearer()).status == 200
        assert server.get("/health").status == 200
        assert KEY not in server.log()
    finally:
        assert server.stop() == 0


# --- the pieces -----------------------------------------------------------------------------

def test_authorized():
    assert authorized(f"Bearer {KEY}", KEY)
    assert authorized(f"BEARER {KEY}", KEY)
    assert not authorized(None, KEY)
    assert not authorized("", KEY)
    assert not authorized(f"Bearer {KEY} extra", KEY)
    assert not authorized(f"Token {KEY}", KEY)
    assert not authorized("Bearer \u00e9\u00e9\u00e9", KEY)  # non-ASCII: no TypeError


def test_the_key_is_secret_in_settings():
    settings = Settings(api_key=KEY)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    assert load_api_key(settings.replace(port=1)) == KEY  # survives a copy
    assert load_api_key(Settings()) is None


def test_a_key_file_that_is_not_a_file(tmp_path: Path):
    with pytest.raises(BindRefusedError, match="not a regular file"):
        load_api_key(Settings(api_key_file=str(tmp_path)))
