"""Precision choices: which quantisation and dtype a model runs in, on which device, and what each is called.

Owns ``--quantize`` and ``--dtype``: their choices, what ``auto`` picks (measured by bench/cpu_bench.py, README
Benchmarks), what each model kind and device allows (a refusal is a :class:`~app.engine.model_source.LoadError`
naming the fix), the bitsandbytes config, and the one word a loaded model's precision is shown as. Knows nothing
about prompts, budgets or storage; imports torch, bitsandbytes and transformers only when asked.
"""

from __future__ import annotations

import logging
from typing import Any

from app.engine.model_source import LoadError
from app.settings import DTYPE_CHOICES, QUANTIZE_CHOICES

log = logging.getLogger(__name__)

#: What ``--dtype auto`` picks for unquantised weights on CPU, chosen by bench/cpu_bench.py (figures in the README).
CPU_AUTO_DTYPE = "float32"


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
            f"this is torch {torch_version()}. Upgrade torch, or use --quantize 4bit (bitsandbytes NF4) or none."
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


def torch_version() -> str:
    import torch

    return torch.__version__


def resolve_precision(
    kind: str, quantize: str, dtype: str, on_cuda: bool, device: str | None = None
) -> tuple[str, str]:
    """``(quantize, dtype)`` for a model of ``kind`` (see :func:`app.engine.model_source.classify_spec`) on ``device``: the flags resolved,
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


def quantization_config(quantize: str, compute_dtype: Any) -> Any:
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
