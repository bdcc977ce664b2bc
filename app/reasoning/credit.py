"""Step credit from rollouts: which step of a trace decided its answer (pure; no model, no store).

Input: for each *point* of a trace -- "after step k" for a step index k, or "before the first step" (k = -1,
the prompt alone) -- the answers extracted from N rollouts that continued the trace from there.

Definitions (the UI's help text and the README say the same):

- **target**: the gold answer when one is given; otherwise the majority answer of all rollouts of the trace
  pooled over every point (ties go to the answer seen first). No target when no rollout gave an answer.
- **share(k)**: the fraction of the N rollouts from after step k whose answer equals the target (a rollout
  with no answer does not reach it). Plotted against k, this is the step-credit curve.
- **importance(k) = share(k) - share(k - 1)**: the share with step k kept minus the share with step k
  resampled in its place. Rollouts from after step k - 1 regenerate step k and everything after it, so the
  difference is what writing *this* step (rather than whatever the model would write there instead) did
  to the chance of reaching the target ("resampling importance", Thought Anchors). Positive: the step helped;
  negative: it hurt. None when the point before k was not rolled out.
- **anchors**: the steps with the largest absolute importance (at most three, never a step whose importance
  is 0 or unknown): where the curve jumps most.
- **Math-Shepherd labels**: soft = share(k); hard = share(k) > 0 (some rollout from after the step still
  reaches the target, so the step has not yet ruined the solution).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.reasoning.answers import answers_equal
from app.reasoning.vote import vote

#: The key under which rollouts that gave no answer are counted.
NO_ANSWER = "(no answer)"
MAX_ANCHORS = 3


@dataclass(frozen=True)
class CreditPoint:
    """The rollouts from one point of the trace: after step ``step`` (-1 = from the prompt)."""

    step: int
    answers: tuple[str | None, ...]
    counts: dict[str, int]  # {answer (first-seen spelling) or NO_ANSWER: count}, largest first
    share: float | None  # None when there is no target
    importance: float | None = None
    anchor: bool = False


@dataclass(frozen=True)
class CreditCurve:
    target: str | None
    target_kind: str  # "gold" | "majority" | "none"
    points: list[CreditPoint] = field(default_factory=list)  # in step order, the prompt point (-1) first

    @property
    def anchors(self) -> list[int]:
        return [p.step for p in self.points if p.anchor]

    def point(self, step: int) -> CreditPoint | None:
        return next((p for p in self.points if p.step == step), None)


def answer_counts(answers: Sequence[str | None]) -> dict[str, int]:
    """Equivalent answers grouped as in a vote (largest first), plus the rollouts that gave none."""
    outcome = vote(answers)
    counts = {answer: count for answer, count in outcome.counts}
    if outcome.abstained:
        counts[NO_ANSWER] = outcome.abstained
    return counts


def pick_target(answers_by_point: Mapping[int, Sequence[str | None]], gold: str | None) -> tuple[str | None, str]:
    """(target, kind): the gold answer, else the pooled majority, else (None, "none")."""
    if gold is not None and gold.strip():
        return gold.strip(), "gold"
    pooled = [a for step in sorted(answers_by_point) for a in answers_by_point[step]]
    majority = vote(pooled).majority
    return (majority, "majority") if majority is not None else (None, "none")


def share_reaching(answers: Sequence[str | None], target: str | None) -> float | None:
    if target is None or not answers:
        return None
    return sum(1 for a in answers if a is not None and answers_equal(a, target)) / len(answers)


def credit_curve(answers_by_point: Mapping[int, Sequence[str | None]], gold: str | None = None) -> CreditCurve:
    """The curve, importances and anchors (see the module docstring) from each point's rollout answers."""
    target, kind = pick_target(answers_by_point, gold)
    steps = sorted(answers_by_point)
    shares = {k: share_reaching(answers_by_point[k], target) for k in steps}
    importance: dict[int, float | None] = {}
    for k in steps:
        before = shares.get(k - 1)
        importance[k] = (shares[k] - before) if k >= 0 and before is not None and shares[k] is not None else None
    ranked = sorted(
        (k for k in steps if importance[k] not in (None, 0.0)),
        key=lambda k: (-abs(importance[k] or 0.0), k),
    )
    anchors = set(ranked[:MAX_ANCHORS])
    points = [
        CreditPoint(
            step=k,
            answers=tuple(answers_by_point[k]),
            counts=answer_counts(answers_by_point[k]),
            share=shares[k],
            importance=importance[k],
            anchor=k in anchors,
        )
        for k in steps
    ]
    return CreditCurve(target=target, target_kind=kind, points=points)


def math_shepherd(share: float) -> tuple[float, bool]:
    """(soft, hard) Math-Shepherd labels of a step from the share of its rollouts reaching the target."""
    return share, share > 0
