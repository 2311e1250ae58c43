"""`max_tokens` and `temperature` have one set of bounds (helios_lsp/settings.py), obeyed by
the settings, the REST API and the LSP client's settings alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from helios_lsp.lsp.config import parse_config
from helios_lsp.settings import MAX_TOKENS_CEILING, Settings, describe_error
from http_api.schemas import CompletionRequest, completion_request_model
from tests.http.conftest import server_env

REQUEST = {"code": "x = ", "language": "python", "position": {"line": 0, "character": 4},
           "filename": "m.py"}


def test_a_default_above_the_limit_is_refused_naming_both_variables():
    with pytest.raises(ValidationError) as err:
        Settings.from_env({"HELIOS_MAX_TOKENS": "600", "HELIOS_MAX_TOKENS_LIMIT": "500"})
    message = describe_error(err.value)
    assert message == ("HELIOS_MAX_TOKENS (the default per request) must be at most "
                       "HELIOS_MAX_TOKENS_LIMIT (the most a request may ask for)")
    # At the limit is fine.
    assert Settings.from_env({"HELIOS_MAX_TOKENS": "500",
                              "HELIOS_MAX_TOKENS_LIMIT": "500"}).max_tokens == 500


def test_the_cli_reports_a_default_above_the_limit(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "helios_lsp", "serve"],
        env=server_env(tmp_path, max_tokens="600", max_tokens_limit="500"),
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert ("invalid setting: HELIOS_MAX_TOKENS (the default per request) must be at most "
            "HELIOS_MAX_TOKENS_LIMIT") in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("limit", [3000, MAX_TOKENS_CEILING])
def test_every_adapter_accepts_up_to_the_limit_and_no_further(limit: int):
    """A default of 3000 under a limit of 3000 was refused by the settings (their own bound
    was 2048) although the limit allowed it."""
    settings = Settings(max_tokens=limit, max_tokens_limit=limit)
    model = completion_request_model(settings)
    assert model.model_validate(REQUEST).max_tokens == limit  # the default
    with pytest.raises(ValidationError, match="less than or equal to"):
        model.model_validate({**REQUEST, "max_tokens": limit + 1})
    config, problems = parse_config({"maxTokens": limit}, settings)
    assert (config.max_tokens, problems) == (limit, [])
    config, problems = parse_config({"maxTokens": limit + 1}, settings)
    assert config.max_tokens == limit and problems and "maxTokens" in problems[0]


@pytest.mark.parametrize("name", ["max_tokens", "max_tokens_limit"])
def test_no_limit_goes_beyond_the_ceiling(name: str):
    with pytest.raises(ValidationError, match=f"less than or equal to {MAX_TOKENS_CEILING}"):
        Settings(**{name: MAX_TOKENS_CEILING + 1})


@pytest.mark.parametrize("temperature", [-0.1, 1.01])
def test_temperature_bounds_are_the_same_everywhere(temperature: float):
    with pytest.raises(ValidationError):
        Settings(temperature=temperature)
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({**REQUEST, "temperature": temperature})
    _, problems = parse_config({"temperature": temperature}, Settings())
    assert problems and "temperature" in problems[0]
