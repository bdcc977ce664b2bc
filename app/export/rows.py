"""Domain records -> dataset rows, one pure function per export format.

This module owns the *shape* of every exported row and the rules that decide which labelled
samples become rows (first error stops a PRM row, the neutral policy, skipping half-labelled
samples). It knows nothing of files, the database, Gradio or torch: it takes the dataclasses of
``app.domain`` and returns plain dicts, so every rule is testable on hand-made samples.

Row shapes (field names are what TRL and other consumers read):

- ``prm``        ``{"prompt": str, "completions": [str], "labels": [bool]}`` (TRL stepwise supervision)
- ``preference`` ``{"prompt": str, "chosen": str, "rejected": str}`` (prompt ends with "\\n", see
                 :func:`text_prompt`) or, conversational,
                 ``{"prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}], "rejected": [...]}``
- ``kto``        ``{"prompt": str, "completion": str, "label": bool}`` (conversational form as for preference)
- ``sft``        ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}``
- ``prm800k``    one line per labelled sample, ratings kept as -1/0/+1 (see :func:`prm800k_row`)

Every row also carries the branch lineage of the run its sample came from (``branch_of_run``,
``branch_of_sample``, ``branch_from_step``, ``branch_kind``; null for an ordinary run; preference rows have them
for both sides, prefixed ``chosen_``/``rejected_``), see ``app.export.lineage``. TRL ignores extra columns.

Completions keep the thinking, laid out by :func:`app.domain.completion_text` (the one place that knows
``<think>\\n{thinking}\\n</think>\\n\\n{answer}``). The first error of a sample is
:func:`app.domain.first_error`, the definition labelling uses too. Which formats exist, and what feeds them, is
the table in ``app.export.formats``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from app.domain import LabelledSample, PreferencePair, Step, StepRating, completion_text, first_error
from app.export.lineage import Lineages, lineage_columns

Format = Literal["prm", "preference", "kto", "sft", "prm800k"]
Neutral = Literal["true", "false", "skip"]

#: How a neutral (0) step becomes a PRM label.
#: "true" (default): a neutral step is not an error, so it counts as a correct step. This is the
#:     lenient reading, and the one under which "the first -1 is where the solution went wrong"
#:     holds. Note that TRL's own PRM800K conversion (trl-lib/prm800k) uses ``rating == 1``, i.e.
#:     neutral -> False; pass "false" to match that.
#: "false": a neutral step counts as a wrong step (the strict reading).
#: "skip": the step gets no label of its own; its text is joined (with "\n", TRL's default step
#:     separator) to the next step's text, so the model still sees it but is not trained on it.
#:     A neutral step with nothing after it is dropped.
NEUTRAL_POLICIES: tuple[str, ...] = ("true", "false", "skip")

#: Skip reasons reported to the user (keys of ``RowBatch.skip_reasons``).
SKIP_UNLABELLED_GAP = "unlabelled step before the last labelled one"
SKIP_NO_LABELS = "no step labels"
SKIP_INCORRECT = "marked incorrect (SFT keeps correct samples only)"
SKIP_NO_VERDICT = "no correct/incorrect verdict"


class ExportError(ValueError):
    """A problem the person exporting can fix; the message says what and how.

    A ``ValueError`` so callers that already handle bad arguments show it unchanged.
    """


@dataclass(frozen=True)
class ExportFilters:
    """The selection a set of rows came from (what the empty-selection message names)."""

    annotator: str | None = None
    model: str | None = None
    since: datetime | None = None

    def describe(self) -> str:
        since = self.since.isoformat(sep=" ", timespec="seconds") if self.since else "any"
        return f"annotator={self.annotator or 'any'}, model={self.model or 'any'}, since={since}"


@dataclass
class RowBatch:
    """Rows of one format plus what the card and the summary report about them."""

    format: str
    rows: list[dict[str, Any]]
    skip_reasons: dict[str, int] = field(default_factory=dict)
    label_balance: dict[str, int] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)
    conversational: bool = False
    neutral: str = "true"

    @property
    def skipped(self) -> int:
        return sum(self.skip_reasons.values())


# --- shared helpers -------------------------------------------------------------------------


def text_prompt(prompt: str) -> str:
    """The prompt of a standard (plain-text) preference/KTO row: trailing space trimmed, one "\n" added.

    TRL tokenises ``prompt + completion`` as one string and takes the completion to start where
    that diverges from the tokenised prompt. Without a separator, BPE merges across the boundary
    ("?" + "<think>" -> "?<"), so the prompt's last token would be trained as completion. A single
    newline is a token boundary for the common BPE pre-tokenisers (checked on SmolLM2's).
    """
    return prompt.rstrip() + "\n"


def _user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def _assistant(content: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": content}]


def check_neutral(neutral: str) -> None:
    """Raise :class:`ExportError` naming a bad ``neutral`` policy and the allowed values."""
    if neutral not in NEUTRAL_POLICIES:
        raise ExportError(
            f"neutral={neutral!r} is not one of {', '.join(NEUTRAL_POLICIES)} (how 0-rated steps are labelled)"
        )


def _ordered_steps(sample: LabelledSample) -> list[Step]:
    return sorted(sample.steps, key=lambda s: s.index)


def _ratings_by_step(sample: LabelledSample) -> dict[int, StepRating]:
    """The current rating per step index; if a step somehow has two, the later one wins."""
    current: dict[int, StepRating] = {}
    for rating in sorted(sample.ratings, key=lambda r: r.created_at):
        current[rating.step_index] = rating
    return current


def _timestamp(moment: datetime) -> str:
    """ISO 8601 with microseconds, always: a fixed width keeps the JSONL column a string column.

    (datasets' JSON reader turns "2025-03-01T12:00:00" into a timestamp but leaves
    "...12:00:00.123456" a string, so mixed precision would give one column two types.)
    """
    return moment.isoformat(timespec="microseconds")


def _sorted_unique(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v})


# --- prm --------------------------------------------------------------------------------------


def prm_row(sample: LabelledSample, neutral: Neutral = "true") -> dict[str, Any] | str:
    """One TRL stepwise-supervision row, or the skip reason (a str) when the sample can't be one.

    Rules: steps in index order; +1 -> True, -1 -> False, 0 -> ``neutral`` policy. The row stops
    at the first error (:func:`~app.domain.first_error`, included, PRM800K-style: nothing after it is
    trusted) or at the last labelled step, whichever comes first. An unlabelled step before that point makes
    the labels ambiguous, so the sample is skipped rather than guessed.
    """
    ratings = _ratings_by_step(sample)
    steps = _ordered_steps(sample)
    rated_positions = [i for i, s in enumerate(steps) if s.index in ratings]
    if not rated_positions:
        return SKIP_NO_LABELS
    end = rated_positions[-1]
    wrong = first_error(ratings[s.index] for s in steps if s.index in ratings)
    if wrong is not None:
        end = next(i for i, s in enumerate(steps) if s.index == wrong)
    included = steps[: end + 1]
    if any(s.index not in ratings for s in included):
        return SKIP_UNLABELLED_GAP

    completions: list[str] = []
    labels: list[bool] = []
    pending: list[str] = []  # texts of neutral steps waiting to be joined to the next labelled step
    for step in included:
        text = step.text.strip()
        rating = ratings[step.index].rating
        if rating == 0 and neutral == "skip":
            pending.append(text)
            continue
        label = rating > 0 or (rating == 0 and neutral == "true")
        completions.append("\n".join([*pending, text]))
        labels.append(label)
        pending = []
    if not completions:
        return SKIP_NO_LABELS
    return {"prompt": sample.prompt, "completions": completions, "labels": labels}


def prm_rows(samples: Sequence[LabelledSample], neutral: Neutral = "true", lineage: Lineages | None = None) -> RowBatch:
    """TRL stepwise-supervision rows (plus the lineage columns); label balance counts True/False step labels."""
    check_neutral(neutral)
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    used: list[LabelledSample] = []
    for sample in samples:
        row = prm_row(sample, neutral)
        if isinstance(row, str):
            skipped[row] += 1
            continue
        rows.append(row | lineage_columns(lineage, sample.run_id))
        used.append(sample)
    n_true = sum(label for row in rows for label in row["labels"])
    n_all = sum(len(row["labels"]) for row in rows)
    return RowBatch(
        format="prm",
        rows=rows,
        skip_reasons=dict(skipped),
        label_balance={"true": n_true, "false": n_all - n_true},
        models=_sorted_unique(s.model for s in used),
        annotators=_sorted_unique(s.annotator for s in used),
        neutral=neutral,
    )


# --- prm800k ----------------------------------------------------------------------------------


def prm800k_row(sample: LabelledSample) -> dict[str, Any] | str:
    """One PRM800K-like line per labelled sample, keeping everything the annotator did.

    Mapping from PRM800K (``{"labeler", "timestamp", "question": {"problem"}, "label": {"steps":
    [{"completions": [{"text", "rating", "flagged"}], ...}], "total_time", "finish_reason"}}``):
    ``labeler`` -> ``annotator``; ``question.problem`` -> ``prompt``; each step has exactly one
    completion here, so ``label.steps[i].completions[0]`` is flattened to ``steps[i]`` with its
    ``text`` and ``rating`` (-1/0/+1, kept as is) plus our ``index``, ``source`` (thinking/answer),
    ``comment`` and ``labelled_at``; ``timestamp``/``total_time`` -> ``labelled_at_start`` and
    ``labelled_at_end`` (first and last rating time, ISO 8601 with microseconds). Steps run up to the last rated
    one; an unrated step before that keeps ``rating: null`` (nothing is dropped here).
    ``first_error`` marks the sample's first error (:func:`~app.domain.first_error`). ``finish_reason`` is ``found_error`` when a step is
    rated -1, ``solution`` when every step is rated and none is -1, else ``partial`` (PRM800K's
    ``give_up``/``bad_problem`` have no counterpart here).
    """
    ratings = _ratings_by_step(sample)
    steps = _ordered_steps(sample)
    rated_positions = [i for i, s in enumerate(steps) if s.index in ratings]
    if not rated_positions:
        return SKIP_NO_LABELS
    included = steps[: rated_positions[-1] + 1]
    wrong = first_error(ratings[s.index] for s in included if s.index in ratings)
    out_steps = []
    for step in included:
        rating = ratings.get(step.index)
        out_steps.append(
            {
                "index": step.index,
                "text": step.text,
                "source": step.source,
                "rating": rating.rating if rating else None,
                "comment": rating.comment if rating else "",
                "first_error": step.index == wrong,
                "labelled_at": _timestamp(rating.created_at) if rating else None,
            }
        )
    if wrong is not None:
        finish_reason = "found_error"
    elif len(ratings.keys() & {s.index for s in steps}) == len(steps):
        finish_reason = "solution"
    else:
        finish_reason = "partial"
    times = sorted(r.created_at for r in ratings.values())
    return {
        "prompt": sample.prompt,
        "model": sample.model,
        "annotator": sample.annotator,
        "steps": out_steps,
        "finish_reason": finish_reason,
        "labelled_at_start": _timestamp(times[0]),
        "labelled_at_end": _timestamp(times[-1]),
    }


def prm800k_rows(samples: Sequence[LabelledSample], lineage: Lineages | None = None) -> RowBatch:
    """PRM800K-like rows (plus the lineage columns); label balance counts the -1/0/+1 ratings written."""
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    used: list[LabelledSample] = []
    for sample in samples:
        row = prm800k_row(sample)
        if isinstance(row, str):
            skipped[row] += 1
            continue
        rows.append(row | lineage_columns(lineage, sample.run_id))
        used.append(sample)
    counts = Counter(step["rating"] for row in rows for step in row["steps"] if step["rating"] is not None)
    return RowBatch(
        format="prm800k",
        rows=rows,
        skip_reasons=dict(skipped),
        label_balance={"+1": counts[1], "0": counts[0], "-1": counts[-1]},
        models=_sorted_unique(s.model for s in used),
        annotators=_sorted_unique(s.annotator for s in used),
    )


# --- preference -------------------------------------------------------------------------------


def preference_row(pair: PreferencePair, conversational: bool = False) -> dict[str, Any]:
    """One TRL preference row (explicit prompt); chosen/rejected keep their thinking."""
    chosen = completion_text(pair.chosen_thinking, pair.chosen_answer)
    rejected = completion_text(pair.rejected_thinking, pair.rejected_answer)
    if conversational:
        return {"prompt": _user(pair.prompt), "chosen": _assistant(chosen), "rejected": _assistant(rejected)}
    return {"prompt": text_prompt(pair.prompt), "chosen": chosen, "rejected": rejected}


def preference_rows(
    pairs: Sequence[PreferencePair], conversational: bool = False, lineage: Lineages | None = None
) -> RowBatch:
    """TRL preference rows, one per recorded choice, with the lineage of both sides (``chosen_``/``rejected_``)."""
    return RowBatch(
        format="preference",
        rows=[
            preference_row(p, conversational)
            | lineage_columns(lineage, p.chosen_run_id, "chosen_")
            | lineage_columns(lineage, p.rejected_run_id, "rejected_")
            for p in pairs
        ],
        label_balance={"pairs": len(pairs)},
        models=_sorted_unique(p.model for p in pairs),
        annotators=_sorted_unique(p.annotator for p in pairs),
        conversational=conversational,
    )


# --- kto / sft --------------------------------------------------------------------------------


def kto_rows(
    samples: Sequence[LabelledSample], conversational: bool = False, lineage: Lineages | None = None
) -> RowBatch:
    """TRL unpaired-preference rows from a person's verdicts (label = marked correct).

    Only verdicts count: preference pairs are deliberately *not* unpaired into KTO rows here.
    """
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    used: list[LabelledSample] = []
    for sample in samples:
        if sample.marked_correct is None:
            skipped[SKIP_NO_VERDICT] += 1
            continue
        completion = completion_text(sample.thinking, sample.answer)
        if conversational:
            row = {"prompt": _user(sample.prompt), "completion": _assistant(completion)}
        else:
            row = {"prompt": text_prompt(sample.prompt), "completion": completion}
        rows.append({**row, "label": bool(sample.marked_correct)} | lineage_columns(lineage, sample.run_id))
        used.append(sample)
    positive = sum(row["label"] for row in rows)
    return RowBatch(
        format="kto",
        rows=rows,
        skip_reasons=dict(skipped),
        label_balance={"positive": positive, "negative": len(rows) - positive},
        models=_sorted_unique(s.model for s in used),
        annotators=_sorted_unique(s.annotator for s in used),
        conversational=conversational,
    )


def sft_rows(samples: Sequence[LabelledSample], lineage: Lineages | None = None) -> RowBatch:
    """Conversational SFT rows (thinking kept) from samples a person marked correct."""
    rows: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    used: list[LabelledSample] = []
    for sample in samples:
        if sample.marked_correct is not True:
            skipped[SKIP_INCORRECT if sample.marked_correct is False else SKIP_NO_VERDICT] += 1
            continue
        messages = _user(sample.prompt) + _assistant(completion_text(sample.thinking, sample.answer))
        rows.append({"messages": messages} | lineage_columns(lineage, sample.run_id))
        used.append(sample)
    return RowBatch(
        format="sft",
        rows=rows,
        skip_reasons=dict(skipped),
        label_balance={"correct": len(rows)},
        models=_sorted_unique(s.model for s in used),
        annotators=_sorted_unique(s.annotator for s in used),
        conversational=True,
    )
