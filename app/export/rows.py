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
- ``prm800k``    one line per labelled sample, ratings kept as -1/0/+1 (``app.export.prm800k``)

Every row also carries the branch lineage of the run its sample came from (``branch_of_run``,
``branch_of_sample``, ``branch_from_step``, ``branch_kind``; null for an ordinary run; preference rows have them
for both sides, prefixed ``chosen_``/``rejected_``), see ``app.export.lineage``. TRL ignores extra columns.

Completions keep the thinking, laid out by :func:`app.domain.completion_text` (the one place that knows
``<think>\\n{thinking}\\n</think>\\n\\n{answer}``). The first error of a sample is
:func:`app.labelled_data.first_error`, the definition labelling uses too. Which formats exist, and what feeds them, is
the table in ``app.export.dataset_formats``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from app.domain import Step, completion_text
from app.errors import InvalidInput
from app.export.lineage import Lineages, lineage_columns
from app.labelled_data import LabelledSample, PreferencePair, StepRating, first_error

#: How a neutral (0) step becomes a PRM label.
#: "true" (default): a neutral step is not an error, so it counts as a correct step. This is the
#:     lenient reading, and the one under which "the first -1 is where the solution went wrong"
#:     holds. Note that TRL's own PRM800K conversion (trl-lib/prm800k) uses ``rating == 1``, i.e.
#:     neutral -> False; pass "false" to match that.
#: "false": a neutral step counts as a wrong step (the strict reading).
#: "skip": the step gets no label of its own; its text is joined (with "\n", TRL's default step
#:     separator) to the next step's text, so the model still sees it but is not trained on it.
#:     A neutral step with nothing after it is dropped.
#: (``app.export.dataset_formats.check_options`` refuses any other value, before rows are built.)
NEUTRAL_POLICIES: tuple[str, ...] = ("true", "false", "skip")

#: Skip reasons reported to the user (keys of ``RowBatch.skip_reasons``).
SKIP_UNLABELLED_GAP = "unlabelled step before the last labelled one"
SKIP_NO_LABELS = "no step labels"
SKIP_INCORRECT = "marked incorrect (SFT keeps correct samples only)"
SKIP_NO_VERDICT = "no correct/incorrect verdict"


class ExportError(InvalidInput):
    """A problem the person exporting can fix; the message says what and how.

    An :class:`~app.errors.InvalidInput`: a ``UserError`` (printed as one line) that is still a ``ValueError``.
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

    @property
    def skip_summary(self) -> str:
        """The skip reasons with their counts, as the summary, the card and the empty-selection errors say them."""
        return "; ".join(f"{reason}: {n}" for reason, n in self.skip_reasons.items())


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


def ordered_steps(sample: LabelledSample) -> list[Step]:
    return sorted(sample.steps, key=lambda s: s.index)


def ratings_by_step(sample: LabelledSample) -> dict[int, StepRating]:
    """The current rating per step index; if a step somehow has two, the later one wins."""
    current: dict[int, StepRating] = {}
    for rating in sorted(sample.ratings, key=lambda r: r.created_at):
        current[rating.step_index] = rating
    return current


def sorted_unique(values: Iterable[str | None]) -> list[str]:
    """The distinct non-empty values, sorted (the models and annotators a batch names)."""
    return sorted({v for v in values if v})


class FromRun(Protocol):
    """A record of one run's sample: its lineage columns are that run's, its model is the batch's."""

    @property
    def run_id(self) -> int | None: ...

    @property
    def model(self) -> str: ...


Record = TypeVar("Record", bound=FromRun)
Rows = list[dict[str, Any]]


def _annotator(record: Any) -> str | None:
    return record.annotator


def build_batch(
    fmt: str,
    records: Sequence[Record],
    make_row: Callable[[Record], dict[str, Any] | str],
    lineage: Lineages | None,
    balance: Callable[[Rows], dict[str, int]],
    *,
    who: Callable[[Record], str | None] = _annotator,
    conversational: bool = False,
    neutral: str = "true",
) -> RowBatch:
    """The batch of ``fmt`` rows of ``records``: ``make_row`` gives a record's row or its skip reason (a str), counted
    in ``skip_reasons``; each row ends with the branch lineage columns of its record's run. ``balance`` counts the
    labels of the rows; the batch names the models and the annotators (``who``) of the records that made rows."""
    rows: Rows = []
    skipped: Counter[str] = Counter()
    used: list[Record] = []
    for record in records:
        row = make_row(record)
        if isinstance(row, str):
            skipped[row] += 1
            continue
        rows.append(row | lineage_columns(lineage, record.run_id))
        used.append(record)
    return RowBatch(
        format=fmt,
        rows=rows,
        skip_reasons=dict(skipped),
        label_balance=balance(rows),
        models=sorted_unique(r.model for r in used),
        annotators=sorted_unique(who(r) for r in used),
        conversational=conversational,
        neutral=neutral,
    )


def step_label_balance(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """True/false step labels over PRM rows (a soft label counts as true when above 0, Math-Shepherd's hard rule)."""
    n_true = sum(1 for row in rows for label in row["labels"] if label > 0)
    n_all = sum(len(row["labels"]) for row in rows)
    return {"true": n_true, "false": n_all - n_true}


# --- prm --------------------------------------------------------------------------------------


def prm_row(sample: LabelledSample, neutral: str = "true") -> dict[str, Any] | str:
    """One TRL stepwise-supervision row, or the skip reason (a str) when the sample can't be one.

    Rules: steps in index order; +1 -> True, -1 -> False, 0 -> ``neutral`` policy. The row stops
    at the first error (:func:`~app.labelled_data.first_error`, included, PRM800K-style: nothing after it is
    trusted) or at the last labelled step, whichever comes first. An unlabelled step before that point makes
    the labels ambiguous, so the sample is skipped rather than guessed.
    """
    ratings = ratings_by_step(sample)
    steps = ordered_steps(sample)
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


def prm_rows(
    samples: Sequence[LabelledSample],
    neutral: str = "true",
    lineage: Lineages | None = None,
    *,
    soft: bool = False,
    provenance: bool = False,
) -> RowBatch:
    """TRL stepwise-supervision rows (plus the lineage columns); label balance counts true/false step labels.

    ``soft`` writes the labels as 1.0 / 0.0; ``provenance`` adds the columns saying the labels are a person's
    (``label_source``, ``annotator``, ``auto_rollouts``, ``auto_target``; see ``app.export.auto_rows``).
    """

    def row_of(sample: LabelledSample) -> dict[str, Any] | str:
        row = prm_row(sample, neutral)
        if isinstance(row, str):
            return row
        if soft:
            row["labels"] = [1.0 if label else 0.0 for label in row["labels"]]
        if provenance:
            row.update(label_source="human", annotator=sample.annotator, auto_rollouts=None, auto_target=None)
        return row

    return build_batch("prm", samples, row_of, lineage, step_label_balance, neutral=neutral)


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
        models=sorted_unique(p.model for p in pairs),
        annotators=sorted_unique(p.annotator for p in pairs),
        conversational=conversational,
    )


# --- kto / sft --------------------------------------------------------------------------------


def kto_row(sample: LabelledSample, conversational: bool = False) -> dict[str, Any] | str:
    """One TRL unpaired-preference row (label = marked correct), or the skip reason when there is no verdict."""
    if sample.marked_correct is None:
        return SKIP_NO_VERDICT
    completion = completion_text(sample.thinking, sample.answer)
    if conversational:
        row: dict[str, Any] = {"prompt": _user(sample.prompt), "completion": _assistant(completion)}
    else:
        row = {"prompt": text_prompt(sample.prompt), "completion": completion}
    return {**row, "label": bool(sample.marked_correct)}


def kto_rows(
    samples: Sequence[LabelledSample], conversational: bool = False, lineage: Lineages | None = None
) -> RowBatch:
    """TRL unpaired-preference rows from a person's verdicts (label = marked correct).

    Only verdicts count: preference pairs are deliberately *not* unpaired into KTO rows here.
    """

    def balance(rows: Rows) -> dict[str, int]:
        positive = sum(row["label"] for row in rows)
        return {"positive": positive, "negative": len(rows) - positive}

    make_row = partial(kto_row, conversational=conversational)
    return build_batch("kto", samples, make_row, lineage, balance, conversational=conversational)


def sft_row(sample: LabelledSample) -> dict[str, Any] | str:
    """One conversational SFT row (thinking kept) from a sample marked correct, or the skip reason."""
    if sample.marked_correct is not True:
        return SKIP_INCORRECT if sample.marked_correct is False else SKIP_NO_VERDICT
    return {"messages": _user(sample.prompt) + _assistant(completion_text(sample.thinking, sample.answer))}


def sft_rows(samples: Sequence[LabelledSample], lineage: Lineages | None = None) -> RowBatch:
    """Conversational SFT rows (thinking kept) from samples a person marked correct."""
    return build_batch("sft", samples, sft_row, lineage, lambda rows: {"correct": len(rows)}, conversational=True)
