"""What the remote engine's phase loop appends (close delimiter, answer cue, "Wait") and what each costs in tokens.

Built per request from :class:`GenerationSettings` and the local tokenizer; the remote counterpart of the local
:class:`~app.engine.budget.BudgetPlan`. Knows nothing about HTTP, storage or UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain import GenerationSettings


@dataclass(frozen=True)
class PhasePlan:
    """The text and token costs of what the loop appends; validated like the local :class:`BudgetPlan`."""

    max_thinking: int
    min_thinking: int
    max_continuations: int
    max_answer: int
    close_tag: str
    end_text: str
    cue_text: str
    cue_tokens: int
    continuation_text: str
    continuation_tokens: int

    @classmethod
    def build(cls, tokenizer: Any, settings: GenerationSettings, close_tag: str, *, extra: int = 0) -> PhasePlan:
        """``extra`` raises both thinking bounds ("Think longer": the prefix's thinking doesn't use the budget)."""

        def count(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False)) if text else 0

        max_t, min_t = settings.resolved_budget()
        max_t, min_t = max_t + extra, min_t + extra
        cont = settings.continuation
        cont_text = (cont if cont[:1].isspace() else "\n" + cont) if cont else ""
        return cls(
            max_thinking=max_t,
            min_thinking=min_t,
            max_continuations=settings.max_continuations,
            max_answer=settings.max_answer_tokens,
            close_tag=close_tag,
            end_text=f"\n{close_tag}\n\n",
            cue_text=settings.answer_cue,
            cue_tokens=count(settings.answer_cue),
            continuation_text=cont_text,
            continuation_tokens=count(cont_text),
        )
