"""Majority voting over sampled answers, and where in the thinking the answer was first reached.

Owns: grouping equivalent answers, tie-breaking, correctness against a gold answer, pass@1 and
majority@k, and the "overthinking" position.
Does not know: how the answers were extracted or generated; it takes extracted answer strings
(None for a sample that gave none) and uses ``answers`` for every equality decision.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.reasoning.answers import answer_key, answers_equal, clean_answer, numeric_value

# Numbers and simple fractions as they appear in running text; matched whole, so "118" never
# counts as an occurrence of "18".
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?![\d])")
_FRACTION = re.compile(r"(?<![\w.])-?(?:\\[dt]?frac\{\d+\}\{\d+\}|\d+\s*/\s*\d+)(?![\d.])")
# What stating a result looks like just before a number: "= 18", "equals 18", "answer is 18", "total of $18",
# "gives 18", "Final Answer: 18", "\boxed{18". A prompt number counts as the answer reached only here.
_RESULT_BEFORE = re.compile(
    r"(?:=|\bequals?|\banswer(?:\s+is)?\s*:?|\btotal(?:\s+of|\s+is)?|\bgives?|\bgets?|\bmakes?|\btherefore"
    r"|\bthus|\\boxed\{)\s*\\?\$?\s*$",
    re.IGNORECASE,
)


@dataclass
class VoteResult:
    """The outcome of one vote.

    ``share`` is the majority's count over all ``n`` samples (abstentions included);
    ``agreement`` is the same count over the samples that answered. ``counts`` lists each
    distinct answer (its first-seen spelling) with its count, largest first, ties in order of
    first appearance. ``correct`` and ``majority_correct`` are None when no gold answer was given;
    with one, an abstaining sample counts as wrong.
    """

    majority: str | None
    share: float
    agreement: float
    counts: list[tuple[str, int]]
    n: int
    abstained: int
    correct: list[bool | None] | None
    majority_correct: bool | None


def vote(answers: Sequence[str | None], gold: str | None = None) -> VoteResult:
    """Group equivalent answers (``answers_equal``) and pick the largest group; ties go to the
    answer that appeared first. None answers abstain."""
    groups: list[list] = []  # [representative, key, count]
    abstained = 0
    for answer in answers:
        if answer is None or not answer_key(answer):
            abstained += 1
            continue
        key = answer_key(answer)
        for group in groups:
            if group[1] == key or answers_equal(group[0], answer):
                group[2] += 1
                break
        else:
            groups.append([answer, key, 1])
    # sorted() is stable, so equal counts keep their order of first appearance.
    counts = [(rep, count) for rep, _, count in sorted(groups, key=lambda g: -g[2])]
    n = len(answers)
    majority, top = counts[0] if counts else (None, 0)
    answered = n - abstained
    correct: list[bool | None] | None = None
    majority_correct: bool | None = None
    if gold is not None:
        correct = [answers_equal(a, gold) for a in answers]
        majority_correct = answers_equal(majority, gold)
    return VoteResult(
        majority=majority,
        share=top / n if n else 0.0,
        agreement=top / answered if answered else 0.0,
        counts=counts,
        n=n,
        abstained=abstained,
        correct=correct,
        majority_correct=majority_correct,
    )


def pass_at_1(correct_flags: Sequence[bool | None]) -> float:
    """The mean correctness of single samples; None (no answer, or not gradable) counts as wrong."""
    if not correct_flags:
        return 0.0
    return sum(1 for flag in correct_flags if flag) / len(correct_flags)


def majority_at_k(
    answers_per_question: Sequence[Sequence[str | None]], golds: Sequence[str | None], k: int | None = None
) -> float:
    """The fraction of questions whose majority over the first ``k`` samples (all if None) is correct."""
    if len(answers_per_question) != len(golds):
        raise ValueError(
            f"got {len(answers_per_question)} answer lists but {len(golds)} gold answers; pass one gold per question"
        )
    if k is not None and k < 1:
        raise ValueError(f"k={k} must be >= 1 (or unset for all samples)")
    if not golds:
        return 0.0
    hits = sum(
        1 for answers, gold in zip(answers_per_question, golds, strict=True) if vote(answers[:k], gold).majority_correct
    )
    return hits / len(golds)


def prompt_numbers(prompt: str) -> set:
    """The values of the numbers written in ``prompt`` ("1,200" and "1200" are the same value)."""
    return {v for m in _NUMBER.finditer(prompt or "") if (v := numeric_value(m.group())) is not None}


def first_answer_position(thinking: str, final: str | None, prompt: str = "") -> float | None:
    """Where (0..1, by characters) the final answer first appears, whole, in the thinking.

    The offset is the end of that first occurrence, so ``1 - position`` is the share of the
    thinking spent after the answer was already on the page. Numbers match by value ("1,234",
    "1234.0"), fractions only when the answer is not an integer (so "16/2" is not "8"). None
    when there is no thinking, no answer, or the answer never appears.

    A number that also occurs in ``prompt`` is usually the question being restated ("she has 16
    eggs"), not the answer being reached; when the final answer is such a number, only occurrences
    stated as a result count ("= 16", "answer is 16", "total of 16", "gives 16"; ``_RESULT_BEFORE``).
    """
    if not thinking or final is None or not (cleaned := clean_answer(final)):
        return None
    value = numeric_value(cleaned)
    end: int | None = None
    if value is not None:
        patterns = [_NUMBER] if value.denominator == 1 else [_NUMBER, _FRACTION]
        hits = [m for p in patterns for m in p.finditer(thinking) if numeric_value(m.group()) == value]
        if value in prompt_numbers(prompt):
            hits = [m for m in hits if _RESULT_BEFORE.search(thinking[max(0, m.start() - 24) : m.start()])]
        end = min((m.end() for m in hits), default=None)
    else:
        word = r"(?<![\w.])" if cleaned[0].isalnum() else ""
        tail = r"(?![\w])" if cleaned[-1].isalnum() else ""
        match = re.search(word + re.escape(cleaned) + tail, thinking, re.IGNORECASE)
        if match is None and answer_key(cleaned) != cleaned.lower():
            match = re.search(re.escape(answer_key(cleaned)), thinking, re.IGNORECASE)
        end = match.end() if match else None
    return None if end is None else end / len(thinking)


def overthinking_tokens(thinking_tokens: int, position: float | None) -> int | None:
    """Thinking tokens spent after the answer first appeared (a char-proportional estimate)."""
    if position is None:
        return None
    return max(0, round(thinking_tokens * (1.0 - min(max(position, 0.0), 1.0))))
