"""Model loading: a Hub id, a local folder, a ``.gguf`` file, ``bundled`` or ``tiny`` -> a :class:`LoadedModel`.

Owns device, dtype and quantisation choices (bitsandbytes 4-bit NF4 / 8-bit, on CUDA and on CPU; torch's
own int4 CPU kernel, :mod:`app.engine.cpu_int4`) and turns every way loading can fail into a
:class:`LoadError` whose message names the problem and the fix. Every loaded model says how it runs as one
``precision`` word: ``int4``, ``nf4``, ``int8``, ``bf16`` or ``fp32``.
``tiny`` is a randomly initialised two-layer Qwen3 with the bundled tokenizer: useless answers,
but it generates in milliseconds, which is what UI and logic tests need.
Knows nothing about prompts, budgets or storage.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from app.engine.bundled import BUNDLED_NAME, BundledModelError, ensure_bundled
from app.engine.reasoning_formats import FormatError, ReasoningFormat, detect_format, get_format
from app.engine.torch_thread import run_on_torch_thread

log = logging.getLogger(__name__)

Quantize = Literal["auto", "int4", "4bit", "8bit", "none"]
QUANTIZE_CHOICES = ("auto", "int4", "4bit", "8bit", "none")
DTYPE_CHOICES = ("auto", "bfloat16", "float32")
#: What ``--dtype auto`` picks for unquantised weights on CPU, chosen by bench/cpu_bench.py (figures in the README).
CPU_AUTO_DTYPE = "float32"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class LoadError(RuntimeError):
    """Loading failed; the message says what went wrong and how to fix it."""


@dataclass
class LoadedModel:
    """A model ready to generate, with what a header needs to describe it."""

    model: Any
    tokenizer: Any
    spec: str
    name: str
    format: ReasoningFormat
    device: str
    quantization: str
    dtype: str
    load_seconds: float
    source: str  # "bundled" | "tiny" | "hub" | "folder" | "gguf"
    precision: str = "fp32"  # how the weights run: "int4" | "nf4" | "int8" | "bf16" | "fp32"

    @property
    def is_small_demo(self) -> bool:
        """True for the bundled 135M model and the random tiny one: not real reasoning models."""
        return self.source in ("bundled", "tiny")

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "spec": self.spec,
            "format": self.format.name,
            "device": self.device,
            "quantization": self.quantization,
            "dtype": self.dtype,
            "precision": self.precision,
            "load_seconds": round(self.load_seconds, 2),
            "source": self.source,
        }


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_has_fused_nf4() -> bool:
    """Whether bitsandbytes runs NF4 on this CPU with its fused bf16 kernel (it needs AVX512-BF16).

    bitsandbytes registers that kernel only where the CPU has AVX512-BF16; elsewhere every 4-bit matmul
    de-quantises the weights first. bench/cpu_bench.py measured NF4 at 1.25-1.6x fp32 on an AVX512-BF16
    Xeon and 0.35x on a CPU without it (README Benchmarks), so this decides ``--quantize auto`` on CPU.
    """
    try:
        from bitsandbytes.functional import has_avx512bf16
    except Exception:  # noqa: BLE001 - no usable bitsandbytes: no NF4 by default
        return False
    return bool(has_avx512bf16())


def cpu_int4_available() -> bool:
    """Whether torch's CPU int4 weight-only kernel runs here (:func:`app.engine.cpu_int4.int4_kernel_available`)."""
    from app.engine.cpu_int4 import int4_kernel_available

    return int4_kernel_available()


def cpu_int4_fast() -> bool:
    """Whether int4 is measured fastest on this CPU (:func:`app.engine.cpu_int4.int4_measured_fast`)."""
    from app.engine.cpu_int4 import int4_measured_fast

    return int4_measured_fast()


def cpu_auto_quantize(ask_bitsandbytes: bool = True, dtype: str = "auto") -> str:
    """What ``--quantize auto`` picks on CPU, fastest first as measured by bench/cpu_bench.py (README
    Benchmarks): ``int4`` where torch runs its AVX512 int4 kernel (1.8x fp32, 1.4x NF4 on the bundled
    model), else ``4bit`` where bitsandbytes has its fused NF4 kernel, else ``none``. int4 runs only in bf16,
    so an explicit ``--dtype float32`` skips it."""
    if dtype != "float32" and cpu_int4_fast():
        return "int4"
    return "4bit" if ask_bitsandbytes and cpu_has_fused_nf4() else "none"


def resolve_quantize(quantize: str, on_cuda: bool, dtype: str = "auto") -> str:
    """``auto`` -> 4bit on CUDA, :func:`cpu_auto_quantize` on CPU; 4bit/8bit work on both, int4 on CPU."""
    if quantize not in QUANTIZE_CHOICES:
        raise LoadError(f"--quantize {quantize!r} is not one of {', '.join(QUANTIZE_CHOICES)}")
    if quantize == "auto":
        return "4bit" if on_cuda else cpu_auto_quantize(dtype=dtype)
    if quantize == "int4" and on_cuda:
        raise LoadError(
            "--quantize int4 is the CPU path (torch's int4 CPU kernel); on a GPU use --quantize 4bit "
            "(bitsandbytes NF4) or auto."
        )
    if quantize == "int4" and not cpu_int4_available():
        raise LoadError(
            "--quantize int4 needs torch's int4 CPU kernel (_weight_int4pack_mm_for_cpu, torch 2.6 or newer); "
            f"this is torch {_torch_version()}. Upgrade torch, or use --quantize 4bit (bitsandbytes NF4) or none."
        )
    return quantize


def resolve_dtype(dtype: str, on_cuda: bool, quantize: str = "none") -> str:
    """``auto`` -> bfloat16 on CUDA and as the compute dtype of NF4 and int4 (both CPU kernels are fast only
    in bf16), else the measured best for plain weights on CPU (``CPU_AUTO_DTYPE``)."""
    if dtype not in DTYPE_CHOICES:
        raise LoadError(f"--dtype {dtype!r} is not one of {', '.join(DTYPE_CHOICES)}")
    if quantize == "int4" and dtype == "float32":
        raise LoadError(
            "--quantize int4 runs in bfloat16 (torch's int4 CPU kernel is ~30x slower in float32). "
            "Drop --dtype float32, or use --quantize none for plain fp32 weights."
        )
    if dtype == "auto":
        return "bfloat16" if on_cuda or quantize in ("4bit", "int4") else CPU_AUTO_DTYPE
    return dtype


def _torch_version() -> str:
    import torch

    return torch.__version__


def resolve_precision(
    kind: str, quantize: str, dtype: str, on_cuda: bool, device: str | None = None
) -> tuple[str, str]:
    """``(quantize, dtype)`` for a model of ``kind`` (see ``_classify``) on ``device``: the flags resolved,
    plus what each kind and device allows. ``tiny`` is always plain fp32, so tests are exact and fast.
    transformers de-quantises a ``.gguf`` and bitsandbytes can't quantise it again, so 4bit/8bit are refused
    there and ``auto`` is int4 (which quantises the de-quantised weights itself) or plain. int4's kernel is
    CPU-only: on another device (e.g. ``mps``) ``auto`` doesn't pick it and an explicit int4 is refused.
    """
    asked = quantize  # what the user asked for; "auto" is resolved below
    if kind == "tiny" and asked == "auto":
        quantize = "none"  # decided here, so the tiny model never pays for asking bitsandbytes about the CPU
    if kind == "gguf" and asked == "auto":
        quantize = "none" if on_cuda else cpu_auto_quantize(ask_bitsandbytes=False, dtype=dtype)
    off_cpu = not on_cuda and str(device or "cpu").split(":", 1)[0] != "cpu"  # e.g. mps ("cpu:0" is a CPU)
    if off_cpu and asked == "int4":  # said before whether this torch has the kernel at all
        raise LoadError(f"--quantize int4 runs on the CPU only, not on {device}; use --quantize none there.")
    quant = resolve_quantize(quantize, on_cuda, dtype)
    if off_cpu and quant == "int4":  # auto picked it
        quant = "none"
    dtype_name = resolve_dtype(dtype, on_cuda, quant)
    if kind == "tiny":
        return "none", "float32"
    if kind == "gguf" and quant in ("4bit", "8bit"):
        raise LoadError(
            f"--quantize {quant} can't be combined with a .gguf file: transformers de-quantises GGUF weights "
            "and bitsandbytes can't quantise them again. Run with --quantize int4 (CPU) or none, or pass the "
            "model's folder or Hub id to load it in 4bit/8bit."
        )
    if asked == "auto" and quant in ("int4", "4bit") and not on_cuda:
        log.info(
            "--quantize auto on this CPU: %s; --quantize none loads the plain fp32 weights.",
            "int4 (torch's int4 CPU kernel, measured fastest)"
            if quant == "int4"
            else "NF4 (bitsandbytes has its fused AVX512-BF16 kernel here, measured faster than fp32)",
        )
    return quant, dtype_name


def precision_name(quantize: str, dtype: str) -> str:
    """The one word the header and the run JSON show: ``int4``, ``nf4``, ``int8``, ``bf16`` or ``fp32``."""
    if quantize == "int4":
        return "int4"
    if quantize == "4bit":
        return "nf4"
    if quantize == "8bit":
        return "int8"
    return "bf16" if dtype == "bfloat16" else "fp32"


def _quantization_config(quantize: str, compute_dtype: Any) -> Any:
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        # NF4 weights, matmuls in bf16 (or fp32 with --dtype float32); bitsandbytes >= 0.45 runs this on CPU too.
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_use_double_quant=True,
        )
    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def _classify(spec: str) -> tuple[str, Path | None]:
    if spec in ("bundled", "tiny"):
        return spec, None
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix == ".gguf":
                return "gguf", path
            raise LoadError(f"{spec} is a file but not a .gguf model; pass a model folder, a .gguf file or a Hub id")
        if not (path / "config.json").is_file():
            raise LoadError(
                f"{spec} is a folder but not a model: it has no config.json. Pass a folder written by "
                "save_pretrained (config.json + weights), a .gguf file, a Hub id or 'bundled'."
            )
        return "folder", path
    if spec.endswith(".gguf") or spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise LoadError(f"No such file or folder: {spec}. Check the path, or pass a Hub id such as Qwen/Qwen3-4B.")
    return "hub", None


def build_tiny(tokenizer_dir: Path, seed: int = 0) -> tuple[Any, Any]:
    """A random two-layer Qwen3 (hidden 64) with the bundled tokenizer; builds in ~0.1 s."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=32768,  # long enough for the tests that cancel long runs
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).eval()
    return model, tokenizer


def load_model(
    spec: str = "bundled",
    *,
    quantize: str = "auto",
    dtype: str = "auto",
    format_name: str | None = None,
    cache_dir: Path | None = None,
    device: str | None = None,
) -> LoadedModel:
    """Load ``spec`` for generation. See the module docstring for what ``spec`` may be.

    Runs on the model thread (:mod:`app.engine.torch_thread`), where all later generation runs too.
    """
    return run_on_torch_thread(
        _load_model,
        spec,
        quantize=quantize,
        dtype=dtype,
        format_name=format_name,
        cache_dir=cache_dir,
        device=device,
    )


def _load_model(
    spec: str,
    *,
    quantize: str,
    dtype: str,
    format_name: str | None,
    cache_dir: Path | None,
    device: str | None,
) -> LoadedModel:
    import torch

    started = time.perf_counter()
    kind, path = _classify(spec)
    on_cuda = cuda_available() if device is None else device.startswith("cuda")
    device = device or ("cuda" if on_cuda else "cpu")
    quant, dtype_name = resolve_precision(kind, quantize, dtype, on_cuda, device)
    if quant == "8bit" and not on_cuda:
        log.warning(
            "--quantize 8bit on CPU works but is slow (bitsandbytes' CPU int8 path: about 0.7 tokens/s for the "
            "bundled model here, several times slower than fp32); --quantize 4bit or none is faster."
        )
    torch_dtype = getattr(torch, dtype_name)
    # int4 quantises from the checkpoint's own dtype (fp32 for the bundled model), then runs in bf16.
    load_dtype: Any = "auto" if quant == "int4" else torch_dtype

    try:
        if kind == "tiny":
            model, tokenizer = build_tiny(ensure_bundled(cache_dir))
            name = "tiny-random-qwen3 (test model)"
        elif kind == "gguf":
            assert path is not None
            model, tokenizer = _from_pretrained(str(path.parent), quant, load_dtype, device, gguf_file=path.name)
            name = path.name
        else:
            source = str(ensure_bundled(cache_dir)) if kind == "bundled" else str(path or spec)
            model, tokenizer = _from_pretrained(source, quant, load_dtype, device, hub=kind == "hub", spec=spec)
            name = BUNDLED_NAME if kind == "bundled" else spec
    except BundledModelError as exc:
        raise LoadError(str(exc)) from exc

    if kind == "tiny" or (quant in ("none", "int4") and not on_cuda):  # from_pretrained placed the others
        model.to(device)
    model.eval()
    if quant == "int4":
        from app.engine.cpu_int4 import quantize_int4_

        counts = quantize_int4_(model)
        log.info("int4: %(int4)d layers in int4, %(int8)d output head in int8, %(kept)d left in bf16", counts)
    try:
        fmt = get_format(format_name) if format_name else detect_format(tokenizer.chat_template, name)
    except FormatError as exc:
        raise LoadError(str(exc)) from exc
    if fmt.name != "plain" and not tokenizer.chat_template:
        raise LoadError(
            f"{name} has no chat template, so the {fmt.name!r} format can't build its prompt. "
            "Run with --format plain to use a plain 'User:/Assistant:' prompt."
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        name=name,
        format=fmt,
        device=device,
        quantization=quant,
        dtype=dtype_name,
        load_seconds=time.perf_counter() - started,
        source=kind,
        precision=precision_name(quant, dtype_name),
    )


def _from_pretrained(
    source: str,
    quant: str,
    dtype: Any,
    device: str,
    *,
    gguf_file: str | None = None,
    hub: bool = False,
    spec: str = "",
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    qconfig = _quantization_config(quant, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        # bitsandbytes places the layers itself: "auto" on a GPU box, and "cpu" explicitly, which is what its
        # CPU backend needs (without a device_map transformers refuses a quantised load without CUDA).
        kwargs["device_map"] = "auto" if device.startswith("cuda") else device
    elif device.startswith("cuda"):
        kwargs["device_map"] = "cuda"
    if hub and not _in_hub_cache(source) and not _hub_reachable():
        raise LoadError(
            f"Could not fetch {spec!r}: the Hugging Face Hub is unreachable and the model is not in the local "
            "cache. Pass a local model folder, a .gguf file or --model bundled, or connect and retry."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **({"gguf_file": gguf_file} if gguf_file else {}))
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        if hub:
            raise LoadError(
                f"Could not fetch {spec!r} from the Hugging Face Hub ({_first_line(exc)}). If you are offline, "
                "pass a local model folder, a .gguf file or --model bundled; if the model is gated, run "
                "`hf auth login` first."
            ) from exc
        raise LoadError(f"Could not load a model from {source}: {_first_line(exc)}") from exc
    except ValueError as exc:
        raise LoadError(f"Could not load a model from {spec or source}: {_first_line(exc)}") from exc
    if gguf_file:  # de-quantised to plain tensors; keep later save_pretrained calls working
        model.hf_quantizer = None
    return model, tokenizer


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe, so an offline machine fails in seconds instead of after a minute of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
