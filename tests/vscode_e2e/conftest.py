"""One code-server and one Chromium for the whole real-VS Code suite; artifacts on failure.

Skipped, with the reason, when a prerequisite is missing (see prereqs.py); with
HELIOS_REQUIRE_VSCODE_E2E=1 (CI, after installing them) a missing one is an error instead.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vscode_e2e import prereqs
from tests.vscode_e2e.harness import VSCode

ARTIFACTS = Path(os.environ.get("HELIOS_E2E_ARTIFACTS", prereqs.EXTENSION_DIR / "e2e-artifacts"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = prereqs.missing()
    if not why:
        return
    reason = "real VS Code prerequisites missing: " + "; ".join(why)
    if os.environ.get("HELIOS_REQUIRE_VSCODE_E2E") == "1":
        raise pytest.UsageError(reason + " (HELIOS_REQUIRE_VSCODE_E2E=1)")
    for item in items:
        if "vscode_e2e" in item.nodeid:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.failed:
        item.stash.setdefault(_FAILED, True)
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def vscode(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[VSCode]:
    started = time.monotonic()
    editor = VSCode(tmp_path_factory.mktemp("vscode"))
    try:
        editor.start()
        yield editor
    finally:
        editor.close()
        _say(
            pytestconfig,
            f"real VS Code suite: code-server and Chromium up in "
            f"{editor.timings.get('start', 0):.1f} s, {time.monotonic() - started:.1f} s in all",
        )


def _say(config: pytest.Config, line: str) -> None:
    # Not print(): output captured during a teardown is easy to miss.
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line)


@pytest.fixture(autouse=True)
def _artifacts_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not request.node.stash.get(_FAILED, False) or "vscode" not in request.fixturenames:
        return
    editor: VSCode = request.getfixturevalue("vscode")
    dest = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    saved = editor.save_artifacts(dest)
    _say(
        request.config,
        f"ARTIFACTS of {request.node.name}: {dest} ({', '.join(p.name for p in saved)})",
    )
