"""What the remote engine's phase loop appends (end delimiter, answer cue, "Wait") and what each costs in tokens.

Built per request from :class:`GenerationSettings` and the local tokenizer; the remote counterpart of the local
:class:`~app.engine.budget.BudgetPlan`, with the same :class:`~app.engine.rulebook.Budget` (validated there) and
the same joins (app.engine.rulebook). Knows nothing about HTTP, storage or UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain import GenerationSettings
from app.engine.rulebook import Budget, continuation_text, end_delimiter


@dataclass(frozen=True)
class PhasePlan:
    """The rulebook's budget, and the text and token cost of each thing the loop appends."""

    budget: Budget
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

        wait = continuation_text(settings.continuation)
        return cls(
            budget=Budget.of(settings, extra_thinking=extra),
            close_tag=close_tag,
            end_text=end_delimiter(close_tag),
            cue_text=settings.answer_cue,
            cue_tokens=count(settings.answer_cue),
            continuation_text=wait,
            continuation_tokens=count(wait),
        )
