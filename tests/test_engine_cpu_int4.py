"""``--quantize int4``'s layers (app.engine.cpu_int4): the maths against a plain fp32 reference, the dense
prefill path against the kernel, which layers get converted, and, on the bundled model, that the group-32
grid reproduces the source weights (they come from a Q4_1 GGUF, the same layout)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from app.engine.cpu_int4 import (
    DENSE_ROWS,
    Int4Linear,
    Int8Linear,
    _unpack_codes,
    int4_codes,
    int4_kernel_available,
    quantize_int4_,
)

pytestmark = pytest.mark.skipif(
    not int4_kernel_available(), reason="int4 needs torch >= 2.6 (_weight_int4pack_mm_for_cpu)"
)


def _reference(linear: nn.Linear) -> torch.Tensor:
    """The weight the int4 codes stand for, in fp32 (no bf16 rounding of scales)."""
    codes, scale, low = int4_codes(linear.weight)
    out_features = linear.weight.shape[0]
    return (codes.reshape(out_features, -1, 32) * scale + low).reshape(linear.weight.shape)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("out_features", [64, 192, 48])  # 48: not a multiple of 64, kernel path only
def test_int4_linear_matches_its_fp32_reference_on_both_paths(out_features):
    torch.manual_seed(0)
    linear = nn.Linear(96, out_features, bias=True)
    layer = Int4Linear(linear)
    assert layer.dense_prefill == (out_features % 64 == 0)
    weight = _reference(linear)
    with torch.inference_mode():
        for rows in (1, 3, DENSE_ROWS + 5):  # decode, a small batch, a prefill past the dense threshold
            x = torch.randn(rows, 96)
            expected = x @ weight.T + linear.bias
            got = layer(x)
            assert got.dtype == x.dtype and got.shape == expected.shape
            assert _rel(got, expected) < 0.02, rows  # bf16 activations and scales: ~0.3-1% here
        x = torch.randn(2, 7, 96)  # a [batch, seq, hidden] input keeps its leading shape
        assert layer(x).shape == (2, 7, out_features)
        last = x[:, -1:, :]  # not contiguous, as a head sees the last position
        assert _rel(layer(last), last @ weight.T + linear.bias) < 0.02


def test_dense_prefill_and_kernel_agree_row_for_row():
    torch.manual_seed(1)
    layer = Int4Linear(nn.Linear(128, 256, bias=False))
    x = torch.randn(DENSE_ROWS, 128).bfloat16()
    with torch.inference_mode():
        dense = layer(x)  # >= DENSE_ROWS rows: de-quantised weight + dense matmul
        kernel = torch.cat([layer(x[i : i + 4]) for i in range(0, DENSE_ROWS, 4)])  # the int4 kernel
    assert _rel(dense, kernel) < 0.01


def test_unpacking_reads_back_the_packed_codes():
    torch.manual_seed(2)
    codes = torch.randint(0, 16, (128, 96), dtype=torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 8)
    assert torch.equal(_unpack_codes(packed, 128, 96).to(torch.int32), codes)


def test_quantize_converts_what_the_kernel_takes_and_casts_the_rest_to_bf16():
    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 64)
            self.up = nn.Linear(64, 128)
            self.odd = nn.Linear(64, 40)  # output not a multiple of 16: left dense
            self.norm = nn.LayerNorm(64)
            self.lm_head = nn.Linear(64, 10, bias=False)
            self.register_buffer("freq", torch.ones(3))  # like rotary frequencies: keeps its dtype

    toy = Toy()
    counts = quantize_int4_(toy)
    assert counts == {"int4": 1, "int8": 1, "kept": 1}
    assert isinstance(toy.up, Int4Linear) and isinstance(toy.lm_head, Int8Linear)
    assert type(toy.odd) is nn.Linear and toy.odd.weight.dtype == torch.bfloat16
    assert toy.embed.weight.dtype == torch.bfloat16 and toy.norm.weight.dtype == torch.bfloat16
    assert toy.freq.dtype == torch.float32
    with torch.inference_mode():
        h = toy.norm(toy.embed(torch.tensor([[1, 2, 3]])))
        assert toy.lm_head(h).shape == (1, 3, 10) and toy.odd(h).shape == (1, 3, 40)


def test_the_head_is_found_by_get_output_embeddings_and_kept_where_int8_cannot_take_it():
    class NeoX(nn.Module):  # GPT-NeoX names its head embed_out
        def __init__(self, hidden: int) -> None:
            super().__init__()
            self.up = nn.Linear(hidden, 64)
            self.embed_out = nn.Linear(hidden, 32, bias=False)

        def get_output_embeddings(self) -> nn.Module:
            return self.embed_out

    neox = NeoX(64)
    assert quantize_int4_(neox) == {"int4": 1, "int8": 1, "kept": 0}
    assert isinstance(neox.embed_out, Int8Linear)
    odd = NeoX(40)  # int8's kernel reads past weights whose input size isn't a multiple of 16: stays bf16
    assert quantize_int4_(odd) == {"int4": 0, "int8": 0, "kept": 2}
    assert type(odd.embed_out) is nn.Linear
    with pytest.raises(ValueError, match="multiple of 16"):
        Int8Linear(nn.Linear(40, 32))


@pytest.mark.parametrize("in_features", [48, 64])
def test_int8_head_matches_fp32(in_features):
    torch.manual_seed(3)
    linear = nn.Linear(in_features, 320, bias=False)
    x = torch.randn(2, 5, in_features)
    with torch.inference_mode():
        assert _rel(Int8Linear(linear)(x), linear(x)) < 0.02
        assert _rel(Int8Linear(linear)(x[:, -1:, :]), linear(x[:, -1:, :])) < 0.02  # a non-contiguous slice


@pytest.mark.bundled
def test_bundled_weights_sit_exactly_on_the_int4_grid(bundled_loaded):
    """The bundled model's projections come from Q4_1 blocks of 32 (scale + minimum), so an fp32 group-32
    grid reproduces them exactly; ``int4_codes`` picks those same codes on the kernel's bf16 grid, which is
    off by under 5% of a step (round-to-nearest on arbitrary weights is off by up to half a step)."""
    worst_fp32 = worst_bf16 = 0.0
    layers = [(n, m) for n, m in bundled_loaded.model.named_modules() if type(m) is nn.Linear and n != "lm_head"]
    assert len(layers) == 30 * 7
    for _, linear in layers:
        w = linear.weight.detach().float()
        groups = w.reshape(w.shape[0], -1, 32)
        low, step = groups.amin(-1, keepdim=True), (groups.amax(-1, keepdim=True) - groups.amin(-1, keepdim=True)) / 15
        exact = ((groups - low) / step).round()  # the Q4_1 codes, on an fp32 grid
        worst_fp32 = max(worst_fp32, float(((exact * step + low - groups).abs() / step).amax()))
        codes, scale, kernel_low = int4_codes(w)
        assert torch.equal(codes.reshape(groups.shape).float(), exact)  # the bf16 grid moves no code
        zero = (kernel_low + 8 * scale).bfloat16().float()  # what Int4Linear stores
        rebuilt = (codes.reshape(groups.shape) - 8) * scale.bfloat16().float() + zero
        worst_bf16 = max(worst_bf16, float(((rebuilt - groups).abs() / step).amax()))
    assert worst_fp32 < 1e-4
    assert worst_bf16 < 0.05
