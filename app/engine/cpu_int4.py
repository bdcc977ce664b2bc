"""``--quantize int4``: torch-native weight-only int4 for fast CPU decode.

Owns turning a loaded bf16 model's ``nn.Linear`` layers into group-32 int4 layers that run on ATen's CPU
int4 kernel (``_weight_int4pack_mm_for_cpu``, the one torchao and gpt-fast use on CPU), and the output
head into per-channel int8 (``_weight_int8pack_mm``). Nothing else: loading decides when (see
:mod:`app.engine.loading`), and the layers know nothing about prompts or budgets.

Why: decoding a small model on CPU streams every weight once per token, and bitsandbytes' NF4 CPU path
spends ~45 us per matmul on top. These two kernels are single ATen ops on packed weights: the bundled
model decodes at 1.8x fp32 and 1.4x NF4 through the engine (bench/cpu_bench.py, README Benchmarks).

The kernel is made for decoding (a few rows at a time). For a long prompt's prefill it is slower than
de-quantising the layer once and running a dense bf16 matmul (5.1 vs 1.9 ms for 512 rows of a 1536x576
layer), so from :data:`DENSE_ROWS` rows on, a layer does that instead.

The format: per group of 32 inputs, a bf16 scale and minimum, 4-bit codes 0..15 (``w = q * scale + min``).
That is the layout of llama.cpp's Q4_1, which is how the bundled model's weights are stored, so on that
model the codes reproduce the source weights and only the bf16 rounding of each group's scale and minimum
differs. The int8 head keeps one scale per output row (the GGUF's head is 8-bit already).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

#: Inputs per int4 group (one scale and minimum each): llama.cpp's Q4_1 block size.
GROUP = 32
#: ATen's int4 packing wants the output size in multiples of this, and its int8 kernel the input size
#: (other input sizes read past the weights: wrong results or a crash).
_OUT_MULTIPLE = 16
_INT8_IN_MULTIPLE = 16
#: From this many rows (prompt tokens x samples) on, de-quantise + dense matmul beats the int4 kernel
#: (break-even measured at ~80-120 rows for the bundled model's layers).
DENSE_ROWS = 128


def int4_kernel_available() -> bool:
    """Whether this torch build has the CPU int4/int8 weight-only kernels (``--quantize int4`` can run)."""
    ops = torch.ops.aten
    has_ops = all(hasattr(ops, name) for name in ("_weight_int4pack_mm_for_cpu", "_convert_weight_to_int4pack_for_cpu"))
    return has_ops and hasattr(torch, "_weight_int8pack_mm")


def int4_measured_fast() -> bool:
    """Whether int4 is the measured fastest way here: the kernels exist and torch dispatches its AVX512 code
    (1.8x fp32 on the bundled model). Other CPUs are unmeasured, so ``--quantize auto`` doesn't pick int4
    there; ``--quantize int4`` still runs."""
    return int4_kernel_available() and torch.backends.cpu.get_cpu_capability() == "AVX512"


def int4_codes(weight: torch.Tensor, group: int = GROUP) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest asymmetric int4 per ``group`` inputs: ``(codes int32 [out, in], scale, minimum)``,
    the last two ``[out, in // group, 1]`` in fp32, so that ``codes * scale + minimum`` approximates ``weight``.

    The kernel keeps each group's scale and the value of code 8 in bf16, so the grid is rounded to those
    first and the codes are the nearest points of the grid the kernel will actually use."""
    w = weight.detach().float()
    out_features, in_features = w.shape
    groups = w.reshape(out_features, in_features // group, group)
    low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp(min=1e-12)
    zero = (low + 8 * scale).to(torch.bfloat16).float()  # ATen's zero: the value of code 8, grid centred on it
    scale = scale.to(torch.bfloat16).float()
    low = zero - 8 * scale
    codes = ((groups - low) / scale).round().clamp(0, 15).to(torch.int32)
    return codes.reshape(out_features, in_features), scale, low


def _unpack_codes(packed: torch.Tensor, out_features: int, in_features: int) -> torch.Tensor:
    """The ``[out, in]`` codes back from ATen's CPU int4 packing, for an output size that is a multiple of 64:
    per tile of 64 output rows and per input, 32 bytes whose low nibbles are rows 0-31, high rows 32-63.
    (:class:`Int4Linear` checks this against the codes it packed and uses it only if it matches.)"""
    tiles = packed.reshape(out_features // 64, in_features, 32)
    nibbles = torch.stack([tiles & 15, tiles >> 4], 2)  # tile, input, half, row-in-half
    return nibbles.permute(0, 2, 3, 1).reshape(out_features, in_features)


class Int4Linear(nn.Module):
    """A linear layer with group-32 int4 weights, bf16 activations; ``y = x W^T (+ b)``."""

    def __init__(self, linear: nn.Linear, group: int = GROUP) -> None:
        super().__init__()
        out_features, in_features = linear.weight.shape
        codes, scale, low = int4_codes(linear.weight, group)
        # ATen's convention: w = (q - 8) * scale + zero, so zero is the value of code 8.
        zero = low + 8 * scale
        pairs = torch.cat([scale, zero], -1).reshape(out_features, in_features // group, 2)
        self.register_buffer("scale_zero", pairs.transpose(0, 1).contiguous().to(torch.bfloat16))
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 8))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))
        self.in_features, self.out_features, self.group = in_features, out_features, group
        #: Whether long inputs may take the de-quantised dense path (the packing layout is the one we read).
        self.dense_prefill = out_features % 64 == 0 and bool(
            torch.equal(_unpack_codes(self.packed, out_features, in_features).to(torch.int32), codes)
        )
        if out_features % 64 == 0 and not self.dense_prefill:
            log.warning("int4: torch's packing layout is not the one expected; long prompts use the slower kernel")

    def dequantized(self) -> torch.Tensor:
        """The bf16 ``[out, in]`` weight these codes stand for (only when :attr:`dense_prefill`)."""
        codes = _unpack_codes(self.packed, self.out_features, self.in_features).to(torch.bfloat16)
        scale, zero = self.scale_zero[..., 0].t().unsqueeze(-1), self.scale_zero[..., 1].t().unsqueeze(-1)
        groups = codes.reshape(self.out_features, -1, self.group)
        return ((groups - 8) * scale + zero).reshape(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        if self.dense_prefill and flat.shape[0] >= DENSE_ROWS:
            y = nn.functional.linear(flat, self.dequantized())
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group, self.scale_zero)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int4 group={self.group}"


class Int8Linear(nn.Module):
    """A linear layer with per-output-row int8 weights, bf16 activations (used for the output head)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        if w.shape[1] % _INT8_IN_MULTIPLE:
            raise ValueError(
                f"int8 head needs an input size that is a multiple of {_INT8_IN_MULTIPLE}, not {w.shape[1]}"
            )
        scale = (w.abs().amax(1) / 127).clamp(min=1e-12).to(torch.bfloat16).float()  # the kernel's bf16 scale
        self.register_buffer("weight_int8", (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))
        self.in_features, self.out_features = w.shape[1], w.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        y = torch._weight_int8pack_mm(flat, self.weight_int8, self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per row"


def quantize_int4_(model: nn.Module) -> dict[str, Any]:
    """Replace, in place, every ``nn.Linear`` of ``model`` whose shape the kernel takes with :class:`Int4Linear`,
    and the output head (``get_output_embeddings()``, or a child named ``lm_head``) with :class:`Int8Linear`
    where its input size allows; then cast the remaining parameters (norms, embeddings,
    layers left dense) to bf16. Quantise from the checkpoint's own dtype (fp32 for the bundled model) so the
    codes see unrounded weights. Buffers such as rotary frequencies keep their dtype. Returns counts:
    ``int4``, ``int8`` and ``kept`` (left in bf16: input size not a multiple of 32 or output of 16)."""
    counts = {"int4": 0, "int8": 0, "kept": 0}
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            out_features, in_features = child.weight.shape
            if child is head or (head is None and name == "lm_head"):
                if in_features % _INT8_IN_MULTIPLE:
                    counts["kept"] += 1
                else:
                    setattr(parent, name, Int8Linear(child))
                    counts["int8"] += 1
            elif in_features % GROUP == 0 and out_features % _OUT_MULTIPLE == 0:
                setattr(parent, name, Int4Linear(child))
                counts["int4"] += 1
            else:
                counts["kept"] += 1
    for param in model.parameters():
        if param.is_floating_point():
            param.data = param.data.to(torch.bfloat16)
    return counts
