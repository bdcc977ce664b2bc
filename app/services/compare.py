"""Hybrid compare: one prompt with thinking off and at a few thinking budgets -- "is thinking worth it here?".

Owns: turning a list of budgets into variants (``0`` = thinking off, always first), running each as a
saved run of kind ``compare``, and the report (answers, thinking tokens, latency, agreement, a verdict).
Does not know: how a model family switches thinking off -- the engine's format does that (a template
switch for hybrids, a prefilled empty ``<think></think>`` for always-thinking models, no system prompt
for prompted ones); this module only names which of those happened. Nothing here imports Gradio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.domain import GenerationSettings, SampleResult, budget_label
from app.engine.events import CancelToken
from app.errors import InvalidInput
from app.reasoning.answers import answers_equal
from app.reasoning.vote import VoteResult, vote
from app.services.inputs import normalise_gold
from app.services.limits import check_cap
from app.services.runs import LOCAL_USER, run_prompt
from app.services.runtime import Runtime

MAX_BUDGETS = 4

_OFF_MODES = {
    "template_kwarg": "the chat template's thinking switch",
    "prefill_empty": "a prefilled empty thinking block (this model always thinks)",
    "no_think_flag": "the /no_think flag",
    "plain": "no thinking instructions (this model was never trained to think)",
}


@dataclass(kw_only=True)
class Variant(SampleResult):
    """One column of the comparison: the variant's sample record (``seconds`` = the variant's wall time) plus
    how it relates to the others."""

    label: str
    budget: int  # 0 = thinking off
    run_id: int | None
    agrees_with_off: bool
    agrees_with_majority: bool
    correct: bool | None


@dataclass
class CompareReport:
    prompt: str
    gold: str | None
    model: str
    off_mode: str  # how "thinking off" was done for this model family, in words
    variants: list[Variant]
    vote: VoteResult
    verdict: str
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "gold": self.gold,
            "model": self.model,
            "off_mode": self.off_mode,
            "verdict": self.verdict,
            "cancelled": self.cancelled,
            "agreement": self.vote.agreement,
            "majority": self.vote.majority,
            "variants": [v.to_dict() for v in self.variants],
        }


def variant_budgets(budgets: list[int]) -> list[int]:
    """``[0, b1, b2, ...]``: thinking off first, then the distinct positive budgets in ascending order."""
    if any(b < 0 for b in budgets):
        raise InvalidInput(
            f"budgets {budgets} include a negative number; use 0 for thinking off and positive token counts"
        )
    positive = sorted({b for b in budgets if b > 0})
    if not positive:
        raise InvalidInput("give at least one thinking budget above 0 (e.g. 64,256) to compare with thinking off")
    if len(positive) > MAX_BUDGETS:
        raise InvalidInput(f"{len(positive)} budgets is too many to compare side by side; pick at most {MAX_BUDGETS}")
    return [0, *positive]


def compare_thinking(
    rt: Runtime,
    prompt: str,
    budgets: list[int],
    settings: GenerationSettings,
    *,
    gold: str | None = None,
    cancel: CancelToken | None = None,
    progress: Callable[[int, int], None] | None = None,
    user: str | None = LOCAL_USER,
) -> CompareReport:
    """Run ``prompt`` once per variant (thinking off, then each budget) and compare the answers.

    Variants run one after another (each is a saved run), so latency is each variant's own wall time.
    ``progress(done, total)`` is called after each variant; a cancel stops after the current one.
    """
    plan = variant_budgets(budgets)
    gold = normalise_gold(gold)
    for budget in plan:  # every variant within the caps before the first one runs
        check_cap(settings.with_budget(budget), rt.settings.max_new_tokens)
    runs = []
    if progress:
        progress(0, len(plan))
    for n, budget in enumerate(plan):
        if cancel is not None and cancel.cancelled:
            break
        saved = run_prompt(
            rt,
            prompt,
            settings.with_budget(budget),
            cancel,
            kind="compare",
            gold=gold,
            label=budget_label(budget),
            user=user,
        )
        runs.append((budget, saved))
        if progress:
            progress(n + 1, len(plan))
    answers = [saved.result.samples[0].extracted_answer if saved.result.samples else None for _, saved in runs]
    outcome = vote(answers, gold)
    off_answer = answers[0] if answers else None
    variants = []
    for i, (budget, saved) in enumerate(runs):
        sample = saved.result.samples[0] if saved.result.samples else SampleResult.failed(error=saved.result.error)
        variants.append(
            Variant(
                **{**sample.sample_values(), "seconds": saved.result.seconds},
                label=budget_label(budget),
                budget=budget,
                run_id=saved.run_id,
                agrees_with_off=i == 0 or _same(answers[i], off_answer),
                agrees_with_majority=answers_equal(answers[i], outcome.majority),
                correct=outcome.correct[i] if outcome.correct is not None else None,
            )
        )
    cancelled = len(runs) < len(plan) or any(v.stop_reason == "cancelled" for v in variants)
    return CompareReport(
        prompt=prompt,
        gold=gold,
        model=rt.loaded.name,
        off_mode=_OFF_MODES.get(rt.loaded.format.off_mode, rt.loaded.format.off_mode),
        variants=variants,
        vote=outcome,
        verdict=verdict(variants, gold is not None, cancelled),
        cancelled=cancelled,
    )


def _same(a: str | None, b: str | None) -> bool:
    """Equal answers, or both without one (two abstentions agree with each other)."""
    return (a is None and b is None) or answers_equal(a, b)


def verdict(variants: list[Variant], graded: bool, cancelled: bool = False) -> str:
    """One sentence answering "is thinking worth it here?" from the variants' answers and costs."""
    if cancelled:
        return "Cancelled before every variant finished; the comparison is partial."
    if len(variants) < 2:
        return "Nothing to compare."
    off, thought = variants[0], variants[1:]
    extra_tokens = max(v.thinking_tokens for v in thought)
    extra_seconds = max(v.seconds for v in thought) - off.seconds
    cost = f"thinking cost up to {extra_tokens} tokens and {extra_seconds:+.1f} s"
    if graded:
        right = [v.label for v in thought if v.correct]
        if off.correct and len(right) == len(thought):
            return f"Not needed here: the answer is already correct with thinking off; {cost}."
        if off.correct:
            return (
                f"Mixed: correct with thinking off, but not at every budget (correct at: {', '.join(right) or 'none'})."
            )
        if right:
            cheapest = min((v for v in thought if v.correct), key=lambda v: v.budget)
            return (
                f"Worth it: wrong with thinking off, correct from {cheapest.label} ({cheapest.thinking_tokens} tokens)."
            )
        return f"No help here: every variant is wrong; {cost}."
    if all(v.agrees_with_off for v in thought):
        return f"Thinking did not change the answer; {cost}. Add a gold answer to see which is right."
    changed = [v.label for v in thought if not v.agrees_with_off]
    return f"Thinking changed the answer at {', '.join(changed)}; add a gold answer to see whether it helped."
