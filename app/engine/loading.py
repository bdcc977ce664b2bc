"""Model loading: a Hub id, a local folder, a ``.gguf`` file, ``bundled`` or ``tiny`` -> a :class:`LoadedModel`.

Loads the weights in the precision app.engine.precision resolves (bitsandbytes 4-bit NF4 / 8-bit, on CUDA and on
CPU; torch's own int4 CPU kernel, :mod:`app.engine.cpu_int4`) and turns every way loading can fail into a
:class:`~app.engine.model_source.LoadError` whose message names the problem and the fix (what a spec names and
:class:`~app.engine.model_source.LoadedModel` are app.engine.model_source's). Every loaded model says how it runs as one
``precision`` word: ``int4``, ``nf4``, ``int8``, ``bf16`` or ``fp32``.
``tiny`` is a randomly initialised two-layer Qwen3 with the bundled tokenizer: useless answers,
but it generates in milliseconds, which is what UI and logic tests need.
Knows nothing about prompts, budgets or storage.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from app.engine.bundled import BUNDLED_NAME, BundledModelError, ensure_bundled
from app.engine.model_source import LoadedModel, LoadError, classify_spec, first_line, format_for, hub_unreachable
from app.engine.precision import (
    cpu_int4_available,
    cuda_available,
    precision_name,
    quantization_config,
    resolve_precision,
)
from app.engine.torch_thread import run_on_torch_thread

#: ``cpu_int4_available`` is app.engine.precision's, named here for the callers that load int4 models.
__all__ = ["LoadError", "LoadedModel", "build_tiny", "cpu_int4_available", "load_model"]

log = logging.getLogger(__name__)


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
    kind, path = classify_spec(spec)
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
    fmt = format_for(tokenizer, name, format_name)
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
    qconfig = quantization_config(quant, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        # bitsandbytes places the layers itself: "auto" on a GPU box, and "cpu" explicitly, which is what its
        # CPU backend needs (without a device_map transformers refuses a quantised load without CUDA).
        kwargs["device_map"] = "auto" if device.startswith("cuda") else device
    elif device.startswith("cuda"):
        kwargs["device_map"] = "cuda"
    if hub and hub_unreachable(source):
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
                f"Could not fetch {spec!r} from the Hugging Face Hub ({first_line(exc)}). If you are offline, "
                "pass a local model folder, a .gguf file or --model bundled; if the model is gated, run "
                "`hf auth login` first."
            ) from exc
        raise LoadError(f"Could not load a model from {source}: {first_line(exc)}") from exc
    except ValueError as exc:
        raise LoadError(f"Could not load a model from {spec or source}: {first_line(exc)}") from exc
    if gguf_file:  # de-quantised to plain tensors; keep later save_pretrained calls working
        model.hf_quantizer = None
    return model, tokenizer
