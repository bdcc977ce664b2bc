"""The plain dataclasses of labelled data: step ratings, labelled and auto-labelled samples, preference pairs.

What the store loads for an export and the export layer turns into dataset rows, beside :mod:`app.domain` (the
generation records). Imports nothing from ``app`` but :mod:`app.domain`, so every layer may depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.domain import Step


@dataclass(frozen=True)
class StepRating:
    """The current rating of one step by one annotator (``first_error`` marks where PRM800K stops)."""

    step_index: int
    rating: int  # -1, 0, +1
    annotator: str
    created_at: datetime
    comment: str = ""
    first_error: bool = False


@dataclass(frozen=True)
class ExportSample:
    """What every exported sample has (its ids, prompt, text, active steps). Subclasses declare ``model`` after
    their own fields, keeping their positional order."""

    sample_id: int
    run_id: int
    prompt: str
    thinking: str
    answer: str
    steps: list[Step]


@dataclass(frozen=True)
class LabelledSample(ExportSample):
    """A sample with its steps and one annotator's current step ratings, ready for export."""

    ratings: list[StepRating]
    annotator: str
    model: str
    marked_correct: bool | None = None  # a person's verdict on the whole sample, for SFT/KTO
    created_at: datetime | None = None


@dataclass(frozen=True)
class PreferencePair:
    """One recorded choice between two samples of the same prompt."""

    prompt: str
    chosen_thinking: str
    chosen_answer: str
    rejected_thinking: str
    rejected_answer: str
    annotator: str
    model: str
    reason: str = ""
    created_at: datetime | None = None
    chosen_run_id: int | None = None  # the runs of the two samples (exports read their branch lineage)
    rejected_run_id: int | None = None
    preference_id: int | None = None  # the stored choice's id (an export reads them page by page, by this id)


def first_error(ratings: Iterable[StepRating]) -> int | None:
    """THE first error of a labelled sample (a step index), the one definition export and labelling share: the step
    the annotator marked "first error here" (the earliest, if several), else the first step rated -1; None when no
    step is wrong. (A PRM row stops there; PRM800K's ``first_error`` flag and the Annotate tab show it.)"""
    current = list(ratings)
    marked = [r.step_index for r in current if r.first_error]
    if marked:
        return min(marked)
    return min((r.step_index for r in current if r.rating < 0), default=None)


@dataclass(frozen=True)
class AutoStepLabel:
    """A machine label of one step (Math-Shepherd): ``soft`` = share of rollouts reaching the target, ``hard`` =
    any did. Never a person's rating."""

    step_index: int
    soft: float
    hard: bool
    created_at: datetime | None = None


@dataclass(frozen=True)
class AutoLabelledSample(ExportSample):
    """A sample with its steps and current automatic labels (one source), ready for export.

    ``source`` is where the labels came from (``auto:mc``); ``rollouts`` (N per step), ``target`` (the answer
    rollouts had to reach) and ``target_kind`` (``gold`` or ``majority``) are its provenance.
    """

    labels: list[AutoStepLabel]
    model: str
    source: str
    rollouts: int
    target: str | None
    target_kind: str
    created_at: datetime | None = None
