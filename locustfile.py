"""Load test for the Helios REST API (the API document's Testing section):

    locust -f locustfile.py --host=http://localhost:8000

Bounded: at most 10 users for 60 seconds whatever the command line says (`LoadShape`), and
loopback only: any other host stops the run before a request is sent. Each simulated user is
a client of its own (X-Helios-Client), so the per-client rate limit (10/s, bursts of 20) and
the server-wide limit of 5 completions in flight are what gets measured; 429s are counted
under their own name, as the expected answer to overload.

Needs locust (`pip install -e '.[load]'`).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import uuid
from urllib.parse import urlsplit

from locust import HttpUser, LoadTestShape, between, events, task

MAX_USERS = 10
SPAWN_RATE = 2  # users started per second
DURATION = 60  # seconds

SNIPPETS = [
    ("python", "fibonacci.py", "def fibonacci(n):\n    if n <= 1:\n        return n\n    "),
    ("python", "math_utils.py",
     "def factorial(n):\n    if n == 0:\n        return 1\n    else:\n        "),
    ("javascript", "utils.js",
     "function calculateSum(arr) {\n    let total = 0;\n"
     "    for (let i = 0; i < arr.length; i++) {\n        "),
    ("go", "main.go", "func max(a, b int) int {\n\tif a > b {\n\t\t"),
    ("rust", "lib.rs", "fn mean(values: &[f64]) -> f64 {\n    "),
]


def _is_loopback(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@events.test_start.add_listener
def _loopback_only(environment, **_kwargs) -> None:
    if not _is_loopback(environment.host):
        logging.error("locustfile: refusing to load-test %r: Helios is local-only "
                      "(use --host=http://localhost:8000)", environment.host)
        environment.runner.quit()


def _position(code: str) -> dict[str, int]:
    lines = code.split("\n")
    return {"line": len(lines) - 1, "character": len(lines[-1])}


class EditorUser(HttpUser):
    """An editor: completions while typing, now and then a health or status poll."""

    wait_time = between(0.2, 1.5)

    def on_start(self) -> None:
        self.client.headers.update({"X-Helios-Client": f"locust-{uuid.uuid4().hex[:12]}"})

    @task(10)
    def complete(self) -> None:
        language, filename, code = random.choice(SNIPPETS)
        # Typing: a few characters more or less each time, so the KV cache and the
        # type-ahead cache see realistic traffic.
        code = code[: len(code) - random.randint(0, 3)]
        body = {"code": code, "language": language, "position": _position(code),
                "filename": filename, "max_tokens": random.choice([16, 32, 64]),
                "temperature": 0.1}
        with self.client.post("/complete", json=body, catch_response=True,
                              name="/complete") as resp:
            if resp.status_code == 429:
                # The documented answer to overload, not an error: counted on a line of its own.
                resp.request_meta["name"] = "/complete [429 SERVER_OVERLOADED]"
                resp.success()
            elif resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
            elif not isinstance(resp.json().get("suggestion"), str):
                resp.failure("no suggestion in the answer")

    @task(2)
    def health(self) -> None:
        self.client.get("/health")

    @task(1)
    def status(self) -> None:
        self.client.get("/status")


class LoadShape(LoadTestShape):
    """Ramp up to MAX_USERS, hold, stop after DURATION seconds."""

    def tick(self) -> tuple[int, float] | None:
        if self.get_run_time() > DURATION:
            return None
        return MAX_USERS, SPAWN_RATE
