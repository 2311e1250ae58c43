"""`sanitize` (a peer's string kept and shown) and `OneLineFormatter` (the log's last guard);
`safe` is tested with the language server's hardening (tests/lsp/test_hardening.py)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import unicodedata

from helios_lsp.logsafe import OneLineFormatter, has_unsafe, safe, sanitize

EVERY = "".join(chr(i) for i in range(0x3000)) + "\u2028\u2029\u202e\u2066\ud800"


def test_sanitize_replaces_every_unsafe_character_and_nothing_else():
    out = sanitize(EVERY, limit=len(EVERY))
    assert len(out) == len(EVERY) and len(out.splitlines()) == 1
    assert not [c for c in out if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")]
    assert "\u202e" not in out and "\u2066" not in out and not has_unsafe(out)
    assert sanitize("evil\n2099\x1b[31m") == "evil\ufffd2099\ufffd[31m"
    # Printable text is kept as it is, backslashes too: nothing is escaped.
    assert sanitize("Qwen/Qwen2.5-Coder ünï ✓ \\x1b") == "Qwen/Qwen2.5-Coder ünï ✓ \\x1b"
    assert sanitize(7) == "7"


def test_sanitize_bounds_the_length_and_changes_nothing_twice():
    assert sanitize("x" * 500, 10) == "x" * 9 + "…"
    assert sanitize("x" * 10, 10) == "x" * 10
    for text, limit in ((EVERY, 100), ("a\nb" * 300, 512), ("plain", 3)):
        once = sanitize(text, limit)
        assert len(once) <= limit and sanitize(once, limit) == once
    # A log site's `safe` leaves a sanitized string as it is (it has no backslash here).
    assert safe(sanitize("evil\n2099\x1b[31m")) == sanitize("evil\n2099\x1b[31m")


def record_to_text(*args: object, exc_info: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tests.logsafe")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc_info:
            try:
                raise ValueError("line one\nline two")
            except ValueError:
                logger.exception(*args)
        else:
            logger.warning(*args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_raw_string_that_reaches_a_message_is_escaped_there():
    text = record_to_text("model %s ready", "evil\n2099-01-01 00:00:00,000 ERROR x\x1b[31m\u202e")
    assert text == ("WARNING tests.logsafe: model evil\\n2099-01-01 00:00:00,000 ERROR "
                    "x\\x1b[31m\\u202e ready\n")
    # What `safe` escaped already is not escaped again.
    assert record_to_text("name %s", safe("a\nb\\c")) == "WARNING tests.logsafe: name a\\nb\\\\c\n"
    # A traceback keeps its lines (it is Helios's own, after the message).
    lines = record_to_text("failed: %s", "x\ny", exc_info=True).splitlines()
    assert lines[0] == "ERROR tests.logsafe: failed: x\\ny"
    assert lines[1] == "Traceback (most recent call last):" and lines[-1].startswith("line two")


def test_the_helios_command_logs_through_it():
    script = ("import logging; from helios_lsp.cli import setup_logging; setup_logging(False); "
              "logging.getLogger('helios').info('model %s ready', 'a\\nb\\x1b[31m')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    (line,) = done.stderr.splitlines()
    assert line.endswith(" INFO helios: model a\\nb\\x1b[31m ready")
