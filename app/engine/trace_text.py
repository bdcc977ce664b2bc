"""From generated text to a trace: thinking and answer split at the close tag, streamed as deltas, kept as samples.

Shared by both engines: :func:`visible_text` is how either one splits a sample's raw text; :class:`RowText` turns
the local engine's batch rows (token ids and budget state, app.engine.budget) into text deltas, snapshots and
:class:`~app.domain.SampleResult` s. Knows nothing about models, servers or storage (no torch here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from app.domain import SampleResult
from app.engine.events import AnswerDelta, Event, PhaseChange, ThinkingDelta
from app.engine.pieces import alternative_texts, token_pieces
from app.engine.reasoning_formats import ReasoningFormat

if TYPE_CHECKING:
    # the rows' type only: importing app.engine.budget would pull torch into the server engine
    from app.engine.budget import RowState
    from app.engine.rulebook import SampleCounts

#: What a stream has shown of each sample so far: (thinking, answer, phase).
Shown = list[tuple[str, str, str]]


def split_text(text: str, open_tag: str, close_tag: str, starts_thinking: bool, final: bool) -> tuple[str, str]:
    """Split generated text into (thinking, answer) at ``close_tag``.

    While streaming (``final=False``) a trailing partial close tag is held back, so "</thi" never
    flashes into the visible thinking.
    """
    if not starts_thinking:
        return "", text
    head, sep, tail = text.partition(close_tag)
    if sep:
        return head.removeprefix(open_tag), tail
    if not final:
        for k in range(min(len(close_tag) - 1, len(head)), 0, -1):
            if head.endswith(close_tag[:k]):
                head = head[:-k]
                break
    return head.removeprefix(open_tag), ""


def visible_text(
    fmt: ReasoningFormat, raw: str, thinking: bool, final: bool, *, hold_open_tag: bool = False
) -> tuple[str, str]:
    """(thinking, answer) of ``raw`` as shown: split at the close tag, the format's answer tags dropped.

    ``hold_open_tag``: while streaming, thinking that could still be the start of a repeated open tag ("<thi")
    is held back (the server engine, whose text arrives in arbitrary chunks)."""
    think, answer = split_text(raw, fmt.open_tag, fmt.close_tag, thinking, final)
    if hold_open_tag and not final and fmt.open_tag.startswith(think):
        think = ""
    if fmt.answer_open:
        answer = answer.replace(fmt.answer_open, "").replace(fmt.answer_close, "")
    return think, answer


def sample_result(index: int, raw: str, text: tuple[str, str], counts: SampleCounts, **fields: Any) -> SampleResult:
    """A :class:`~app.domain.SampleResult` from a sample's raw text, its (thinking, answer) and its counts (either
    engine's); ``fields`` are the rest (stop reason, times, error, token data)."""
    think, answer = text
    return SampleResult(
        index=index,
        raw_text=raw,
        thinking=think.strip(),
        answer=answer.strip(),
        thinking_tokens=counts.thinking_tokens,
        answer_tokens=counts.answer_tokens,
        continuations=counts.continuations,
        **fields,
    )


class RowText:
    """The local engine's rows as text: deltas while streaming, snapshots, and the finished samples."""

    def __init__(self, tokenizer: Any, fmt: ReasoningFormat, thinking: bool) -> None:
        self.tokenizer = tokenizer
        self.format = fmt
        self.thinking = thinking

    def text(self, ids: list[int], final: bool, lead: str = "") -> tuple[str, str, str]:
        """(raw, thinking, answer) of a row that continues ``lead`` with ``ids``."""
        raw = lead + self.tokenizer.decode(ids, skip_special_tokens=False)
        think, answer = visible_text(self.format, raw, self.thinking, final)
        return raw, think, answer

    def deltas(
        self, rows: Sequence[tuple[list[int], str]], shown: Shown, final: bool = False, lead: str = ""
    ) -> Iterator[Event]:
        """The text and phase changes since ``shown`` (updated in place) for rows given as (ids, phase)."""
        for i, (ids, phase) in enumerate(rows):
            _, think, answer = self.text(ids, final, lead)
            if not final:  # hold back a multi-byte character still being generated
                think, answer = think.rstrip("\ufffd"), answer.rstrip("\ufffd")
            old_think, old_answer, old_phase = shown[i]
            if len(think) > len(old_think) and think.startswith(old_think):
                yield ThinkingDelta(i, think[len(old_think) :])
                old_think = think
            if phase != old_phase:
                yield PhaseChange(i, phase)
            if len(answer) > len(old_answer) and answer.startswith(old_answer):
                yield AnswerDelta(i, answer[len(old_answer) :])
                old_answer = answer
            shown[i] = (old_think, old_answer, phase)

    def snapshot(
        self, rows: Sequence[tuple[list[int], str]], states: Sequence[RowState], started: float, lead: str = ""
    ) -> list[SampleResult]:
        """Every row's text and counts so far, for a crash-safe save (stop reason not final: ``cancelled``)."""
        now = time.perf_counter()
        samples = []
        for i, ((ids, _phase), row) in enumerate(zip(rows, states, strict=True)):
            raw, think, answer = self.text(ids, final=False, lead=lead)
            samples.append(sample_result(i, raw, (think, answer), row, stop_reason="cancelled", seconds=now - started))
        return samples

    def sample(
        self, index: int, row: RowState, started: float, cancelled: bool, error: str | None, lead: str = ""
    ) -> SampleResult:
        """A finished row as a sample: its text, counts, stop reason (app.engine.rulebook) and times."""
        raw, think, answer = self.text(row.ids, final=True, lead=lead)
        reason = row.stop_reason(row.phase, error=error, cancelled=cancelled)
        timings = row.timings(started, thinking=self.thinking, tokens=len(row.ids))
        return sample_result(index, raw, (think, answer), row, stop_reason=reason, error=error, **timings)

    def attach_tokens(self, samples: list[SampleResult], rows: Sequence[RowState], capture: Any, source: str) -> None:
        """Give each sample its token trace (the lens) from a :class:`~app.engine.confidence.ConfidenceCapture`."""
        traces = capture.traces([(row.ids, row.labels) for row in rows], source)
        for sample, trace in zip(samples, traces, strict=True):
            trace.pieces = token_pieces(self.tokenizer, trace.token_ids)
            trace.vocab = alternative_texts(self.tokenizer, trace.top_ids)
            sample.tokens = trace
