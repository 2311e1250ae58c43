"""Finding the model: GGUF path, Ollama store, embedded default; bad files refused early."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from helios_lsp.engine import InvalidModelFileError, ModelNotFoundError, resolve_model
from helios_lsp.engine.gguf_file import read_gguf_info
from tests.gguf_factory import CORRUPT_KINDS, write_corrupt


@pytest.fixture(autouse=True)
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    store = tmp_path / "ollama"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    return store


def lay_out_ollama(store: Path, model: Path, name: str, tag: str,
                   namespace: str = "library") -> Path:
    """An Ollama store as `ollama pull` leaves it: a manifest naming a sha256 blob."""
    data = model.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob = store / "blobs" / digest.replace(":", "-")
    blob.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, blob)
    manifest = store / "manifests" / "registry.ollama.ai" / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "layers": [
            {"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:" + "0" * 64},
            {"mediaType": "application/vnd.ollama.image.model", "digest": digest,
             "size": len(data)},
        ],
    }))
    return blob


def test_path_to_gguf(tiny_model: Path):
    resolved = resolve_model(str(tiny_model))
    assert resolved.source == "path"
    assert resolved.path == tiny_model
    assert resolved.info.architecture == "llama"


def test_explicit_missing_file_names_what_was_tried(tmp_path: Path):
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(str(tmp_path / "nope.gguf"))
    assert "nope.gguf" in str(err.value)
    assert err.value.tried == [f"GGUF file {tmp_path / 'nope.gguf'}"]


def test_explicit_name_not_in_store_never_falls_back(empty_store: Path):
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("codellama:13b-code")
    assert str(empty_store) in str(err.value)
    assert "embedded" not in str(err.value)


def test_ollama_store_lookup(empty_store: Path, tiny_model: Path):
    blob = lay_out_ollama(empty_store, tiny_model, "codellama", "7b-code")
    resolved = resolve_model("codellama:7b-code")
    assert (resolved.source, resolved.path, resolved.name) == ("ollama", blob, "codellama:7b-code")


def test_ollama_default_tag_and_namespace(empty_store: Path, tiny_model: Path):
    lay_out_ollama(empty_store, tiny_model, "tiny", "latest")
    assert resolve_model("tiny").source == "ollama"
    lay_out_ollama(empty_store, tiny_model, "coder", "q4", namespace="someone")
    assert resolve_model("someone/coder:q4").path.parent.name == "blobs"


def test_unset_uses_default_name_from_store_first(empty_store: Path, tiny_model: Path):
    lay_out_ollama(empty_store, tiny_model, "codellama", "7b-code")
    resolved = resolve_model(None)
    assert resolved.source == "ollama"
    assert "default model name" in resolved.reason


def test_unset_falls_back_to_embedded(embedded_model: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level("INFO"):
        resolved = resolve_model(None)
    assert resolved.source == "embedded"
    assert resolved.path == embedded_model
    assert resolved.info.architecture == "llama"
    assert sum("embedded" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("kind", CORRUPT_KINDS)
def test_corrupt_files_are_refused_before_llama_cpp(tmp_path: Path, kind: str):
    path = write_corrupt(tmp_path / f"{kind}.gguf", kind)
    with pytest.raises(InvalidModelFileError) as err:
        resolve_model(str(path))
    assert str(tmp_path) not in str(err.value)  # the reason names no path


def test_corrupt_blob_in_store_is_refused(empty_store: Path, tmp_path: Path):
    bad = write_corrupt(tmp_path / "bad.gguf", "truncated")
    lay_out_ollama(empty_store, bad, "broken", "latest")
    with pytest.raises(InvalidModelFileError, match="truncated"):
        resolve_model("broken")


def test_embedded_file_header(embedded_model: Path):
    info = read_gguf_info(embedded_model)
    assert info.context_length == 8192
    assert info.metadata["llama.block_count"] == 30
