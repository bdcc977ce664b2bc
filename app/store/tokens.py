"""Per-token confidence (``app.domain.TokenTrace``) <-> the compact ``sample_tokens`` row, and loading it.

Ids are little-endian int32, probabilities and entropies float16 with NaN for "none" (forced tokens);
the top alternatives are ``top_n`` per token, padded with id -1. About 30 bytes per token with five
alternatives, plus the token texts. Knows nothing of models or UI; never imports torch.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import TOP_ALTERNATIVES, TokenTrace
from app.store.models import SampleTokens


def _pack_f16(values: Sequence[float | None]) -> bytes:
    return struct.pack(f"<{len(values)}e", *(math.nan if v is None else v for v in values))


def _unpack_f16(data: bytes) -> list[float | None]:
    values = struct.unpack(f"<{len(data) // 2}e", data)
    return [None if math.isnan(v) else round(v, 4) for v in values]


def _pack_i32(values: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


def _unpack_i32(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 4}i", data))


def token_row(sample_id: int, trace: TokenTrace) -> SampleTokens:
    """The row saving ``trace`` for ``sample_id``."""
    top_n = max((len(ids) for ids in trace.top_ids), default=TOP_ALTERNATIVES) or TOP_ALTERNATIVES
    flat_ids: list[int] = []
    flat_probs: list[float | None] = []
    for ids, probs in zip(trace.top_ids, trace.top_probs, strict=True):
        pad = top_n - len(ids)
        flat_ids += list(ids) + [-1] * pad
        flat_probs += list(probs) + [None] * pad
    return SampleTokens(
        sample_id=sample_id,
        n_tokens=len(trace.token_ids),
        top_n=top_n,
        token_ids=_pack_i32(trace.token_ids),
        labels=trace.labels,
        prob=_pack_f16(trace.prob),
        entropy=_pack_f16(trace.entropy),
        top_ids=_pack_i32(flat_ids),
        top_probs=_pack_f16(flat_probs),
        pieces=list(trace.pieces),
        vocab={str(k): v for k, v in trace.vocab.items()},
        source=trace.source,
    )


def trace_from_row(row: SampleTokens) -> TokenTrace:
    n, top_n = row.n_tokens, row.top_n
    flat_ids = _unpack_i32(row.top_ids)
    flat_probs = _unpack_f16(row.top_probs)
    top_ids, top_probs = [], []
    for j in range(n):
        ids = flat_ids[j * top_n : (j + 1) * top_n]
        probs = flat_probs[j * top_n : (j + 1) * top_n]
        keep = [m for m, i in enumerate(ids) if i >= 0]
        top_ids.append([ids[m] for m in keep])
        top_probs.append([probs[m] or 0.0 for m in keep])
    return TokenTrace(
        token_ids=_unpack_i32(row.token_ids),
        labels=row.labels,
        prob=_unpack_f16(row.prob),
        entropy=_unpack_f16(row.entropy),
        top_ids=top_ids,
        top_probs=top_probs,
        source=row.source,
        pieces=list(row.pieces),
        vocab={int(k): v for k, v in row.vocab.items()},
    )


def load_traces(session: Session, sample_ids: list[int]) -> dict[int, TokenTrace]:
    """The token data of each sample that has it (others are simply absent)."""
    if not sample_ids:
        return {}
    rows = session.scalars(select(SampleTokens).where(SampleTokens.sample_id.in_(sample_ids)))
    return {row.sample_id: trace_from_row(row) for row in rows}
