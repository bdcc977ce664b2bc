"""The budget rulebook: the one statement of the s1 budget rules that both engines consult.

A sample moves through three phases -- :data:`THINKING`, :data:`ANSWER`, :data:`DONE` -- and this module
says when it moves and what text the move forces:

* while thinking, a wish to stop (the close tag or end-of-sequence as the model's choice) below the minimum is
  answered with the continuation ("Wait", joined by :func:`continuation_text`), at most ``max_continuations``
  times and only while it fits in the budget (:meth:`Budget.wants_more_thinking`, :meth:`Budget.continuation_fits`);
* the thinking budget spent (:meth:`Budget.thinking_spent`) forces the end delimiter (:func:`end_delimiter`)
  and then the answer cue: a ``budget_cut``;
* the answer ends at end-of-sequence, or after ``max_answer`` tokens (:meth:`Budget.answer_spent`);
* how a sample ended is one rule too (:func:`stop_reason`).

The local engine's ``LogitsProcessor`` (app.engine.budget) applies the rules token by token; the remote engine's
phase loop (app.engine.remote_phases) applies them request by request. Each forced token carries a label saying
what it is: :data:`THINKING_TEXT`, :data:`DELIMITER` or :data:`ANSWER_TEXT`. Knows nothing about tokens,
models, servers or storage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.domain import GenerationSettings, StopReason

#: The phases of one sample, in order.
THINKING, ANSWER, DONE = "thinking", "answer", "done"
#: What a generated (or forced) token is: thinking text, a delimiter (the close tag's tokens), answer text.
THINKING_TEXT, DELIMITER, ANSWER_TEXT = "t", "c", "a"


def continuation_text(continuation: str) -> str:
    """The text a "Wait" forces: the continuation on a new line unless it starts with its own space."""
    if not continuation:
        return ""
    return continuation if continuation[:1].isspace() else "\n" + continuation


def end_delimiter(close_tag: str) -> str:
    """The text that closes the thinking when the rules force it (the answer cue follows it)."""
    return f"\n{close_tag}\n\n"


@dataclass(frozen=True)
class RowStart:
    """Where a row begins when it continues a trace prefix: its phase and the tokens already written."""

    phase: str = THINKING
    thinking_tokens: int = 0
    answer_tokens: int = 0


@dataclass(frozen=True)
class Budget:
    """The token bounds of one generation, validated on construction (``ValueError`` naming the bad bound)."""

    max_thinking: int
    min_thinking: int
    max_continuations: int
    max_answer: int

    def __post_init__(self) -> None:
        if self.max_thinking < 0:
            raise ValueError(f"max_thinking={self.max_thinking} must be >= 0")
        if self.min_thinking > self.max_thinking:
            raise ValueError(f"min_thinking={self.min_thinking} exceeds max_thinking={self.max_thinking}")
        if self.max_answer < 1:
            raise ValueError(f"max_answer={self.max_answer} must be >= 1")

    @classmethod
    def of(cls, settings: GenerationSettings, *, extra_thinking: int = 0) -> Budget:
        """The bounds ``settings`` ask for; ``extra_thinking`` raises both thinking bounds ("Think longer": the
        thinking already written in the prefix does not use the budget)."""
        max_thinking, min_thinking = settings.resolved_budget()
        return cls(
            max_thinking=max_thinking + extra_thinking,
            min_thinking=min_thinking + extra_thinking,
            max_continuations=settings.max_continuations,
            max_answer=settings.max_answer_tokens,
        )

    def thinking_spent(self, thinking_tokens: int) -> bool:
        """The budget is used up: the end delimiter and cue are forced now (``budget_cut``)."""
        return thinking_tokens >= self.max_thinking

    def wants_more_thinking(self, thinking_tokens: int, continuations: int) -> bool:
        """Below the minimum with continuations left: an attempt to stop thinking is answered with "Wait"."""
        return thinking_tokens < self.min_thinking and continuations < self.max_continuations

    def continuation_fits(self, thinking_tokens: int, continuation_tokens: int) -> bool:
        """A "Wait" of ``continuation_tokens`` tokens still fits in the thinking budget."""
        return continuation_tokens > 0 and thinking_tokens + continuation_tokens <= self.max_thinking

    def answer_spent(self, answer_tokens: int) -> bool:
        """The answer reached ``max_answer`` tokens: end-of-sequence is forced (stop reason ``max_tokens``)."""
        return answer_tokens >= self.max_answer


@dataclass(kw_only=True)
class SampleCounts:
    """What the rules track for one sample on either engine: tokens per phase, "Wait"s, how thinking ended, times."""

    thinking_tokens: int = 0
    answer_tokens: int = 0
    continuations: int = 0
    cut: bool = False
    user_cut: bool = False
    answer_capped: bool = False
    first_token_at: float | None = None
    thinking_done_at: float | None = None
    done_at: float | None = None

    def stop_reason(self, phase: str, *, error: str | None, cancelled: bool) -> StopReason:
        """How the sample ended, in :data:`app.domain.STOP_REASONS` terms (``phase`` is where it stopped)."""
        if error:
            return "error"
        if phase != DONE and cancelled:
            return "cancelled"
        if self.user_cut:
            return "user_cut"
        if self.cut:
            return "budget_cut"
        if self.answer_capped or phase != DONE:
            return "max_tokens"
        return "end"

    def timings(self, started: float, *, thinking: bool, tokens: int) -> dict[str, Any]:
        """A finished sample's times since ``started`` (``perf_counter``), as :class:`~app.domain.SampleResult`
        fields; ``tokens`` is what the sample decoded, for its rate."""
        end = self.done_at or time.perf_counter()
        first = self.first_token_at
        decode_seconds = end - first if first else 0.0
        return {
            "seconds": end - started,
            "time_to_first_token": (first - started) if first else None,
            "thinking_seconds": (self.thinking_done_at - started) if self.thinking_done_at and thinking else None,
            "tokens_per_second": (tokens / decode_seconds) if decode_seconds > 0 else 0.0,
        }
