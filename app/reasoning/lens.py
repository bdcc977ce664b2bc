"""The trace lens: forking tokens, pivot words and per-sample confidence summaries (pure functions).

Owns: which tokens are "forking" (the highest-entropy share of a trace, 20% by default as in
arXiv:2506.01939), where pivot words ("Wait", "Hmm", "Alternatively", ...) occur, and the summary a
Self-consistency card shows. Works on :class:`app.domain.TokenTrace` (captured while generating) and, for
pivots, on plain text too, so runs saved before capture still get pivot counts.
Does not know: how the numbers were captured, how they are drawn, or where they are stored.

Forced tokens (budget forcing's close tag, answer cue and injected "Wait") have no entropy: they are never
forking, and an injected "Wait" is not counted as a pivot the model chose (``forced=True`` on the pivot).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from app.domain import TokenTrace
from app.errors import InvalidInput

DEFAULT_FORKING_SHARE = 0.2

#: Pivot words and phrases, matched case-insensitively as whole words. Each marks the model turning back
#: or trying another way (cf. the s1 "Wait" and the backtracking markers counted in overthinking studies).
PIVOTS: tuple[str, ...] = (
    "Wait",
    "Hmm",
    "Alternatively",
    "Actually",
    "However",
    "Hold on",
    "On second thought",
    "Let me double-check",
    "Let me re-check",
    "Let me check",
    "Let me verify",
    "Let me reconsider",
)
_PIVOT_RE = re.compile(r"(?<![\w-])(" + "|".join(re.escape(p) for p in PIVOTS) + r")(?![\w-])", re.IGNORECASE)
_CANONICAL = {p.lower(): p for p in PIVOTS}


@dataclass(frozen=True)
class Pivot:
    """One pivot occurrence: its canonical word, its character span, and (with token data) its tokens."""

    word: str
    start: int
    end: int
    tokens: tuple[int, ...] = ()
    forced: bool = False  # injected by budget forcing, not chosen by the model


@dataclass(frozen=True)
class TraceSummary:
    """What a Self-consistency card shows about one sample's confidence."""

    has_tokens: bool
    n_tokens: int = 0
    mean_entropy: float | None = None  # nats, over the sampled (not forced) tokens
    mean_prob: float | None = None
    forking: int = 0
    forced: int = 0
    pivots: dict[str, int] = field(default_factory=dict)  # canonical word -> count (model-chosen only)

    @property
    def n_pivots(self) -> int:
        return sum(self.pivots.values())


def find_pivots(text: str) -> list[Pivot]:
    """Every pivot word in ``text``, in order (character spans index ``text``)."""
    return [Pivot(_CANONICAL[m.group(1).lower()], m.start(), m.end()) for m in _PIVOT_RE.finditer(text)]


def count_pivots(text: str) -> dict[str, int]:
    return dict(Counter(p.word for p in find_pivots(text)))


def piece_offsets(trace: TokenTrace) -> list[int]:
    """The start offset of each token's text in ``"".join(trace.pieces)`` (plus the total length at the end)."""
    offsets = [0]
    for piece in trace.pieces:
        offsets.append(offsets[-1] + len(piece))
    return offsets


def token_pivots(trace: TokenTrace) -> list[Pivot]:
    """Pivots of the trace's text with the tokens that spell them; ``forced`` if any of those was forced."""
    offsets = piece_offsets(trace)
    text = "".join(trace.pieces)
    forced = trace.forced
    out = []
    for p in find_pivots(text):
        tokens = tuple(j for j in range(len(trace.pieces)) if offsets[j] < p.end and offsets[j + 1] > p.start)
        out.append(Pivot(p.word, p.start, p.end, tokens, any(forced[j] for j in tokens)))
    return out


def forking_mask(trace: TokenTrace, share: float = DEFAULT_FORKING_SHARE) -> list[bool]:
    """True for the ``share`` of sampled tokens with the highest entropy (forced and zero-entropy tokens never).

    Ranked, not thresholded, so a trace always has about ``share`` of its tokens marked; ties go to the
    earlier token. ``share`` is a fraction in [0, 1].
    """
    if not 0 <= share <= 1:
        raise InvalidInput(f"forking share={share} must be between 0 and 1 (0.2 = the top 20% by entropy)")
    candidates = [(e, j) for j, e in enumerate(trace.entropy) if e is not None and e > 0]
    sampled = sum(1 for e in trace.entropy if e is not None)
    n = min(len(candidates), round(share * sampled))
    chosen = {j for _, j in sorted(candidates, key=lambda c: (-c[0], c[1]))[:n]}
    return [j in chosen for j in range(len(trace.entropy))]


def summarize(trace: TokenTrace | None, text: str = "", share: float = DEFAULT_FORKING_SHARE) -> TraceSummary:
    """The card summary; without token data only the pivots of ``text`` (the thinking) are counted."""
    if trace is None or not len(trace):
        return TraceSummary(has_tokens=False, pivots=count_pivots(text))
    entropies = [e for e in trace.entropy if e is not None]
    probs = [p for p in trace.prob if p is not None]
    pivots = Counter(p.word for p in token_pivots(trace) if not p.forced)
    return TraceSummary(
        has_tokens=True,
        n_tokens=len(trace),
        mean_entropy=_mean(entropies),
        mean_prob=_mean(probs),
        forking=sum(forking_mask(trace, share)),
        forced=sum(trace.forced),
        pivots=dict(pivots),
    )


def trace_from_json(sample: dict) -> TokenTrace | None:
    """A :class:`TokenTrace` back from a run JSON sample's ``token_*`` fields; None when it has no token data."""
    pieces = sample.get("token_text")
    if not pieces:
        return None
    n = len(pieces)
    forced = sample.get("token_forced") or [False] * n
    phases = sample.get("token_phase") or ["thinking"] * n
    letter = {"thinking": "t", "delimiter": "c", "answer": "a"}
    labels = "".join(
        letter.get(p, "t").upper() if f else letter.get(p, "t") for p, f in zip(phases, forced, strict=True)
    )
    vocab: dict[int, str] = {}
    top_ids: list[list[int]] = []
    top_probs: list[list[float]] = []
    for alternatives in sample.get("token_top") or [[] for _ in range(n)]:
        ids = []
        for text, _ in alternatives:
            vocab[len(vocab)] = str(text)
            ids.append(len(vocab) - 1)
        top_ids.append(ids)
        top_probs.append([float(p) for _, p in alternatives])
    return TokenTrace(
        token_ids=list(range(n)),
        labels=labels,
        prob=list(sample.get("token_prob") or [None] * n),
        entropy=list(sample.get("token_entropy") or [None] * n),
        top_ids=top_ids,
        top_probs=top_probs,
        source=str(sample.get("token_source") or ""),
        pieces=[str(p) for p in pieces],
        vocab=vocab,
    )


def _mean(values: list[float]) -> float | None:
    return round(math.fsum(values) / len(values), 4) if values else None
