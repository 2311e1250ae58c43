"""A smoke run of the benchmark harness (`python -m bench --quick`), so it cannot rot.

It checks the report's structure and that its numbers are present and sane, never that
targets pass: timings belong to the harness's report, not to unit tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, embedded_model) -> dict:
    out = tmp_path_factory.mktemp("bench")
    # Its own process group: on a timeout the servers it started go with it.
    proc = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    assert (out / "latest.md").read_text().startswith("# Helios benchmark")
    data = json.loads((out / "latest.json").read_text())
    data["_markdown"] = (out / "latest.md").read_text()
    return data


def _positive(x) -> bool:
    return isinstance(x, int | float) and 0 < x < 3600


def test_every_helios_contender_ran(report):
    available = report["meta"]["available"]
    for name in ("bare", "helios-engine", "helios-http", "helios-lsp"):
        assert available[name], report["meta"]["unavailable"]


def test_targets_are_checked(report):
    ids = {t["id"] for t in report["targets"]}
    assert {"1", "2-helios-http-median", "2-helios-http-p95", "2-helios-lsp-median",
            "2-helios-http-reeval", "3-helios-http", "3-helios-lsp", "4-exact",
            "4-garbage"} <= ids
    for t in report["targets"]:
        assert t["status"] in {"PASS", "FAIL", "N/A"}
    assert "## Targets" in report["_markdown"]


def test_replay_numbers_are_sane(report):
    replay = report["summary"]["replay"]
    contenders = ["helios-http", "helios-lsp", "helios-engine"]
    if report["meta"]["available"]["peer"]:
        contenders.append("peer")
    for name in contenders:
        r = replay[name]
        assert r["keystrokes"] == 6 and r["errors"] == 0
        assert _positive(r["latency"]["median"]) and _positive(r["latency_first"]["median"])
        assert r["latency"]["p95"] >= r["latency"]["median"]
        assert r["counted"] == 6  # every keystroke's counters were read
        assert 0 <= r["model_free_share"] <= 1
    helios = replay["helios-http"]
    assert helios["prompt_tokens"]["median"] > 0
    assert 0 <= helios["reeval_share_within_line"]["median"] <= 1
    if "peer" in replay:
        assert replay["peer"]["evaluated"]["n"] == 6
        assert helios["vs_peer"]["median"] > 0


def test_overhead_pairs_match_the_work(report):
    ov = report["summary"]["overhead"]
    assert ov["mirrored"] == "helios-http"
    first = ov["first"]
    assert first["pairs"] == 1 and first["work_matched"] == 1.0  # same prompt, same tokens
    assert _positive(first["helios"]["median"]) and _positive(first["bare"]["median"])
    assert first["ratio"]["median"] > 0
    repeat = ov["repeat"]
    assert 1 <= repeat["pairs"] <= 2 and repeat["work_matched"] > 0
    assert ov["target_pairs"]["pairs"] >= 1 and ov["target_pairs"]["ratio"]["median"] > 0
    assert ov["repeat_engine"]["pairs"] == repeat["pairs"]


def test_paced_typing_ran_with_cancellation(report):
    paced = report["summary"]["paced"]
    for name in ("helios-http", "helios-lsp"):
        assert paced[name]["keystrokes"] == 6
        assert _positive(paced[name]["last_latency"]["median"])
        assert paced[name]["engine"].get("requests", 0) >= 1


def test_typeahead_and_quality_are_scored(report):
    ta = report["summary"]["typeahead"]
    for name in ("helios-http", "helios-lsp"):
        assert ta[name]["starts"] == 1  # one probe, right after the replayed segment
        assert ta[name]["hits"] <= ta[name]["typed"] <= 3
        if ta[name]["hits"]:
            assert _positive(ta[name]["latency_hits"]["median"])
    q = report["summary"]["quality"]
    assert q["helios"]["cases"] == 3 and q["helios"]["errors"] == 0
    for r in q.values():
        assert 0 <= r["exact"] <= 1 and 0 <= r["garbage"] <= 1
        assert 0 <= r["edit_similarity"] <= 1


def test_startup_and_memory(report):
    st = report["summary"]["startup"]
    for name in ("bare", "helios-serve", "helios-lsp+sidecar"):
        assert st[name]["runs"] == 1, st[name]
        assert _positive(st[name]["startup_seconds"]["median"])
        assert 50 < st[name]["rss_mib"]["median"] < 4096


def test_jumps_report_the_first_keystroke_after_a_jump(report):
    jp = report["summary"]["jumps"]
    assert jp["places"] == 4 and jp["pause"] == 1.0  # a first place, then 3 jumps
    r = jp["helios-http"]
    assert r["jumps"] == 3 and r["errors"] == 0
    assert _positive(r["first_key"]["median"]) and r["first_key"]["p95"] >= r["first_key"][
        "median"]
    assert sum(k["n"] for k in r["by_kind"].values()) == 3
    assert r["by_kind"]["within"]["n"] >= 1 and r["start"]["n"] == 1
    assert r["typing"]["n"] == 4  # one more keystroke at each of the 4 places
    assert "### Jumps" in report["_markdown"]


def test_trimmed_client_against_the_naive_bare_engine(report):
    tr = report["summary"]["trimmed"]
    for name in ("helios-http", "bare"):
        r = tr[name]
        assert r["keystrokes"] == 3 and r["errors"] == 0
        assert r["model_ran"] == 3  # a new client id per key: no type-ahead answer
        assert _positive(r["latency"]["median"]) and r["latency"]["p95"] >= r["latency"][
            "median"]
        assert r["prompt_tokens"]["median"] > 1000  # the 6,000 characters, not a stub
    helios = tr["helios-http"]
    # The new line's window is evaluated once (at the first request, or after its quick
    # answer in the background); then the cut moves with every key, the prompt does not.
    assert helios["evaluated_first"]["median"] + helios["background_tokens"] > 1000
    assert helios["evaluated"]["median"] <= 5
    assert tr["vs_bare"]["median"] > 0
    assert {t["id"]: t["status"] for t in report["targets"]}["6-trimmed"] in {"PASS", "FAIL"}
    assert "### A client that sends only the last 6,000 characters" in report["_markdown"]


def test_llama_server_is_a_contender_when_built(report):
    from tests.llama_server import find_binary, missing_reason

    if find_binary() is None:
        assert report["meta"]["unavailable"]["llama-server"] == missing_reason()
        warnings.warn(f"SKIPPED the llama-server contender: {missing_reason()}", stacklevel=1)
        pytest.skip(missing_reason())
    assert report["meta"]["available"]["llama-server"], report["meta"]["unavailable"]
    ls = report["summary"]["replay"]["llama-server"]
    assert ls["keystrokes"] == 6 and ls["errors"] == 0
    assert _positive(ls["latency"]["median"]) and _positive(ls["latency_first"]["median"])
    assert ls["evaluated"]["n"] == 6  # its answers say how much prompt it evaluated
    assert ls["evaluated"]["median"] < ls["prompt_tokens"]["median"]  # cache_prompt reuses
    assert report["summary"]["replay"]["helios-http"]["vs_llama_server"]["p95"] > 0
    jl = report["summary"]["jumps"]["llama-server"]
    assert jl["jumps"] == 3 and jl["errors"] == 0 and _positive(jl["first_key"]["median"])
    assert report["summary"]["jumps"]["helios-http"]["vs_llama_server"]["median"] > 0
    ids = {t["id"]: t["status"] for t in report["targets"]}
    assert ids["5-llama-server-median"] in {"PASS", "FAIL"}


def test_crossfile_runs_every_configuration(report):
    cf = report["summary"]["crossfile"]
    for config in ("off", "open", "workspace"):
        c = cf["configs"][config]
        assert c["cases"] == 2 and c["errors"] == 0, c
        assert 0 <= c["hit_share"] <= 1 and 0 <= c["exact_share"] <= 1
        assert _positive(c["latency"]["median"])
    for config in ("off", "workspace"):  # 2 keystrokes at each of the 2 places
        assert cf["keys"][config]["keystrokes"] == 4
        assert _positive(cf["keys"][config]["latency"]["p95"])
    assert cf["keys"]["ratio"]["p95"] > 0
    index = cf["index"]
    assert index["written_files"] == 300 and index["probes"] > 0
    assert index["baseline"]["n"] > 0 and _positive(index["baseline"]["median"])
    ids = {t["id"]: t["status"] for t in report["targets"]}
    for tid in ("7-hits-open", "7-hits-workspace", "7-keys-p95", "7-index-delay",
                "7-index-rss"):
        assert ids[tid] in {"PASS", "FAIL", "N/A"}
    assert "## 6. Cross-file context" in report["_markdown"]
    workload = report["results"]["crossfile"]["workload"]
    assert workload and all(len(f["sha256"]) == 64 for f in workload)


def test_cpu_per_keystroke_counts_every_helios_process(report):
    cpu = report["summary"]["cpu"]
    rows = {r["part"]: r for r in cpu["rows"]}
    assert list(rows) == ["replay", "jumps", "trimmed-file", "trimmed-sent"]
    per_read = cpu["per_status_read"]["shared"]
    assert 0 < per_read < 0.05  # a GET /status costs Helios about a millisecond
    for part, r in rows.items():
        assert r["mode"] == "shared" and not r["engine_restarted"], part
        # The server and the shared engine daemon behind it, both measured.
        assert set(r["cpu_by_process"]) == {"server", "engine"}
        assert r["keystrokes"] > 0 and _positive(r["total_cpu"]) and _positive(r["answer_cpu"])
        assert r["background_cpu"] >= 0 and r["answer_tokens"] > 0
        # The engine's own counts of its jobs fit in what /proc says its process used
        # (ticks of 10 ms, read once before and once after).
        assert r["cpu_by_process"]["engine"] >= r["answer_cpu"] + r["background_cpu"] - 0.05
        assert r["status_reads_cpu"] == pytest.approx(r["status_reads"] * per_read)
        assert r["helios_cpu"] == pytest.approx(r["total_cpu"] - r["status_reads_cpu"])
        assert r["ratio"] == pytest.approx(r["helios_cpu"] / r["answer_cpu"])
        assert r["cpu_per_key_ms"] == pytest.approx(1000 * r["helios_cpu"] / r["keystrokes"])
        # Every bit of background work in the span is put down to some cause.
        causes = r["background_by_cause"].values()
        assert sum(c["tokens"] for c in causes) == r["background_tokens"]
        assert sum(c["cpu"] for c in causes) == pytest.approx(r["background_cpu"], abs=1e-6)
    assert rows["jumps"]["prefetch_requests"] == 4  # one POST /prefetch at each place
    for part in ("trimmed-file", "trimmed-sent"):  # a new client id per key: 4 model runs
        r = rows[part]
        assert r["keystrokes"] == r["engine_requests"] == 4
        # The 6,000 characters' window was evaluated (answered, or warmed in the
        # background before the span ended): the idle wait counted the background.
        assert r["answer_tokens"] + r["background_tokens"] > 1000
    for part, r in rows.items():
        # The reference does nothing ahead of the answers: no quick answer, no warming.
        need = r["need"]
        assert need["keystrokes"] == r["keystrokes"] and need["prefetch_requests"] == 0, part
        assert need["quick_answers"] == need["warmings"] == need["background_tokens"] == 0
        assert _positive(need["helios_cpu"]) and need["answer_tokens"] > 0
        assert r["need_ratio"] == pytest.approx(r["helios_cpu"] / need["helios_cpu"])
    ids = {t["id"]: t["status"] for t in report["targets"]}
    for part in rows:
        assert ids[f"8-cpu-{part}"] in {"PASS", "FAIL"}
    assert "### CPU per keystroke (issue 18)" in report["_markdown"]
    # Nothing the scenario started is left: the server, and the engine daemon by its pid.
    runs = report["results"]["cpu"]["modes"]["shared"]
    for pid in (p for role in ("helios", "need") for p in runs[role]["pids"].values()):
        cmd = Path(f"/proc/{pid}/cmdline")
        assert not cmd.exists() or b"helios_lsp" not in cmd.read_bytes(), pid
