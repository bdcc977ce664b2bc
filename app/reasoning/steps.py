"""Cutting a trace into steps an annotator can rate, and the two edits an annotator may make.

Owns: what a step is (a line, or a sentence that starts with a pivot word such as "Wait"), the
rule that tiny fragments join a neighbour, and ``merge_steps`` / ``split_step``.
Does not know: ratings, storage or the UI. Every function is pure: it takes ``Step`` lists and
returns new ones, re-indexed from 0.

Invariant: ``source_text[step.start:step.end] == step.text`` and ``step.text`` has no surrounding
whitespace, so the UI can highlight a step by its offsets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise

from app.domain import Phase, Step
from app.errors import InvalidInput

#: Words that, at the start of a sentence, turn the trace in a new direction and so start a step.
PIVOTS: tuple[str, ...] = (
    "But wait",
    "Wait",
    "Alternatively",
    "Hmm",
    "Let me check",
    "Let me double-check",
    "Let me verify",
    "On second thought",
    "Actually",
    "Hold on",
)

#: A stripped fragment shorter than this is too small to rate on its own.
MIN_STEP_CHARS = 12

_PIVOT_ALT = "|".join(re.escape(p) for p in sorted(PIVOTS, key=len, reverse=True))
_STARTS_WITH_PIVOT = re.compile(rf"(?:{_PIVOT_ALT})\b")
# The whitespace between a sentence end and a pivot word: that is where a line is cut.
_PIVOT_CUT = re.compile(rf"(?<=[.!?;)\"'*])[ \t]+(?=(?:{_PIVOT_ALT})\b)")
_LINE = re.compile(r"[^\n]+")
_NO_WORDS = re.compile(r"[\W\d_]+")
# A tiny fragment that introduces what follows (a heading, a label, a list marker, an opening
# display-math bracket) joins the next step; any other tiny fragment joins the previous one.
_LEADS_IN = re.compile(r"#.*|.*:|\d+[.)]|[-*+]|\\\[|\$\$|\\begin\{.*")


def segment_steps(text: str, source: Phase = "thinking") -> list[Step]:
    """Cut ``text`` into steps: one per line, a new one at each mid-line pivot, tiny fragments merged."""
    spans: list[list[int]] = []
    pending: list[int] | None = None  # tiny fragments waiting to join the next step
    for start, end in _pieces(text):
        piece = text[start:end]
        if not _is_tiny(piece):
            spans.append([pending[0] if pending else start, end])
            pending = None
        elif pending is not None:
            pending[1] = end
        elif spans and not _leads_in(piece):
            spans[-1][1] = end
        else:
            pending = [start, end]
    if pending is not None:
        if spans:
            spans[-1][1] = pending[1]
        else:
            spans.append(pending)
    return [Step(index=i, text=text[s:e], start=s, end=e, source=source) for i, (s, e) in enumerate(spans)]


def segment_trace(thinking: str, answer: str) -> list[Step]:
    """Thinking steps then answer steps, indexed continuously; offsets point into their own text."""
    steps = segment_steps(thinking, "thinking") + segment_steps(answer, "answer")
    return _reindex(steps)


def merge_steps(steps: Sequence[Step], index: int, text: str | None = None) -> list[Step]:
    """Merge step ``index`` with step ``index + 1``.

    Pass the source ``text`` to keep the whitespace between the two exactly; without it the gap
    is filled with as many newlines as it is wide (so offsets and lengths still agree).
    """
    if not 0 <= index < len(steps) - 1:
        raise InvalidInput(
            f"index={index} has no following step to merge with; valid indexes are 0..{len(steps) - 2}"
            if len(steps) > 1
            else f"index={index}: merging needs at least two steps, got {len(steps)}"
        )
    first, second = steps[index], steps[index + 1]
    if first.source != second.source:
        raise InvalidInput(
            f"step {index} is in the {first.source} and step {index + 1} in the {second.source}; "
            "steps from different halves of a trace cannot be merged"
        )
    if text is not None:
        merged_text = text[first.start : second.end]
    else:
        merged_text = first.text + "\n" * max(second.start - first.end, 0) + second.text
    merged = Step(index=index, text=merged_text, start=first.start, end=second.end, source=first.source)
    return _reindex([*steps[:index], merged, *steps[index + 2 :]])


def split_step(steps: Sequence[Step], index: int, at: int) -> list[Step]:
    """Split step ``index`` in two at ``at``, a char offset into the source text (like ``Step.start``)."""
    if not 0 <= index < len(steps):
        raise InvalidInput(f"index={index} is not a step; valid indexes are 0..{len(steps) - 1}")
    step = steps[index]
    if not step.start < at < step.end:
        raise InvalidInput(
            f"at={at} is outside step {index}, which spans chars {step.start}..{step.end}; "
            "pick an offset strictly inside it"
        )
    cut = at - step.start
    left, right = step.text[:cut].rstrip(), step.text[cut:]
    right_start = at + len(right) - len(right.lstrip())
    right = right.lstrip()
    if not left or not right:
        raise InvalidInput(
            f"splitting step {index} at={at} would leave an empty step (only whitespace on one side); "
            "pick an offset between two words"
        )
    first = Step(index=index, text=left, start=step.start, end=step.start + len(left), source=step.source)
    second = Step(index=index + 1, text=right, start=right_start, end=step.end, source=step.source)
    return _reindex([*steps[:index], first, second, *steps[index + 1 :]])


def _pieces(text: str) -> list[tuple[int, int]]:
    """Stripped (start, end) spans: each line, cut again before every mid-line pivot."""
    pieces: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        cuts = [line.start(), *(m.start() for m in _PIVOT_CUT.finditer(text, line.start(), line.end())), line.end()]
        for start, end in pairwise(cuts):
            chunk = text[start:end]
            stripped = chunk.strip()
            if stripped:
                s = start + len(chunk) - len(chunk.lstrip())
                pieces.append((s, s + len(stripped)))
    return pieces


def _is_tiny(piece: str) -> bool:
    return len(piece) < MIN_STEP_CHARS or _NO_WORDS.fullmatch(piece) is not None


def _leads_in(piece: str) -> bool:
    return _STARTS_WITH_PIVOT.match(piece) is not None or _LEADS_IN.fullmatch(piece) is not None


def _reindex(steps: Sequence[Step]) -> list[Step]:
    return [s if s.index == i else Step(i, s.text, s.start, s.end, s.source) for i, s in enumerate(steps)]
