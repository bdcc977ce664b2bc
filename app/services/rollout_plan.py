"""What N rollouts will cost, said before they start, and their default thinking budget.

Owns: the default budget of a rollout (the thinking it keeps from its parent plus :data:`ROLLOUT_ALLOWANCE`,
rather than the parent's effort preset, which may allow thousands of tokens more), the estimate of the kept
thinking tokens, and the one-line cost ("4 rollouts × up to 256 new thinking tokens ...").
Does not know: the store, the engine or Gradio (``app.services.branching`` feeds it a stored trace).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidInput

#: Thinking tokens a rollout may add to the thinking it keeps, by default.
ROLLOUT_ALLOWANCE = 256


def kept_tokens(thinking_tokens: int, thinking: str, kept_chars: int) -> int:
    """About how many of a trace's ``thinking_tokens`` the first ``kept_chars`` characters of its thinking hold
    (in proportion to the characters; all of them when the whole thinking is kept)."""
    if not thinking or kept_chars <= 0:
        return 0
    return thinking_tokens if kept_chars >= len(thinking) else round(thinking_tokens * kept_chars / len(thinking))


@dataclass(frozen=True)
class RolloutPlan:
    """N rollouts' budget: ``budget`` max thinking tokens each, the ``kept`` thinking included."""

    n: int
    budget: int
    kept: int  # thinking tokens kept from the parent (about)
    answer_tokens: int  # max answer tokens per rollout

    @property
    def new_thinking(self) -> int:
        return max(0, self.budget - self.kept)

    @property
    def most_tokens(self) -> int:
        """The most tokens the rollouts can generate together."""
        return self.n * (self.new_thinking + self.answer_tokens)

    @property
    def text(self) -> str:
        return (
            f"{self.n} rollouts × up to {self.new_thinking} new thinking tokens (thinking budget {self.budget}: "
            f"about {self.kept} kept from the trace + {self.new_thinking}) and up to {self.answer_tokens} answer "
            f"tokens = at most {self.most_tokens:,} tokens to generate"
        )


def plan(n: int, kept: int, budget: int | None, answer_tokens: int) -> RolloutPlan:
    """``n`` rollouts keeping ``kept`` thinking tokens: ``budget`` each, by default ``kept`` plus
    :data:`ROLLOUT_ALLOWANCE`; a budget below 1 is refused with the fix."""
    if budget is None:
        budget = kept + ROLLOUT_ALLOWANCE
    elif budget < 1:
        raise InvalidInput(f"thinking budget={budget} must be at least 1 token; leave it blank for the default")
    return RolloutPlan(n, budget, kept, answer_tokens)
