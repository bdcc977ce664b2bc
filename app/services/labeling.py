"""Labelling use-cases: the queue, opening a sample, rating steps, merge/split, verdicts, preferences, agreement.

The Annotate tab, its API endpoints and the tests all call these functions, so everything a person can click can
be scripted. Each takes the store (``app.store.Store``) as its first argument and returns plain dataclasses.
Rules that are about *labelling* rather than storage live here: who the annotator is (a login wins over a typed
name), PRM800K's "first error stops the sample" (steps after it are refused), and which step a label may target
(only a current step of the sample that was opened).
Knows nothing of Gradio or SQLAlchemy; the store raises ``StoreError`` and so does this module
(``LabelingError``), with messages a person can act on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from app.errors import StoreError
from app.labelled_data import first_error
from app.store.records import LabelProgress, LabelRecord, QueueItem, StoredRun, StoredStep
from app.store.repository import Store

#: Words a person or an API client may use for each rating (PRM800K's +1 / 0 / -1).
RATING_WORDS: dict[str, int] = {
    "+1": 1, "1": 1, "good": 1, "correct": 1, "+": 1,
    "0": 0, "neutral": 0,
    "-1": -1, "wrong": -1, "bad": -1, "-": -1,
}  # fmt: skip
RATING_TEXT: dict[int, str] = {1: "+1", 0: "0", -1: "-1"}
MAX_OTHER_RUNS = 10  # how many other runs of the same prompt feed preference candidates


class LabelingError(StoreError):
    """A labelling action was refused (bad input, or a rule such as PRM800K's stop after the first error)."""


@dataclass(frozen=True)
class StepView:
    """One active step with the opening annotator's current label (``rating`` None = not labelled)."""

    step_id: int
    index: int
    source: str
    text: str
    rating: int | None = None
    comment: str = ""
    first_error: bool = False
    labelled_at: datetime | None = None
    after_first_error: bool = False  # PRM800K: steps after the first error stay unlabelled


@dataclass(frozen=True)
class SampleView:
    """What the Annotate tab shows for one sample and one annotator."""

    sample_id: int
    run_id: int
    sample_index: int
    prompt: str
    model: str
    thinking: str
    answer: str
    extracted_answer: str | None
    stop_reason: str
    annotator: str
    steps: list[StepView]
    verdict: bool | None
    first_error_index: (
        int | None
    )  # where the sample first goes wrong: app.labelled_data.first_error (as export reads it)
    stopped_at: int | None = None  # the step marked "first error here": PRM800K labelling stops after it

    @property
    def n_labelled(self) -> int:
        return sum(1 for s in self.steps if s.rating is not None)

    @property
    def done(self) -> bool:
        """Every step labelled, or a first error marked (the queue's definition)."""
        return self.stopped_at is not None or self.n_labelled == len(self.steps)

    def next_unlabelled(self, after: int = -1) -> int | None:
        """Position of the first unlabelled, labelable step after position ``after`` (then from the top)."""
        open_positions = [i for i, s in enumerate(self.steps) if s.rating is None and not s.after_first_error]
        later = [i for i in open_positions if i > after]
        return (later or open_positions or [None])[0]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(n_labelled=self.n_labelled, done=self.done)
        return data


@dataclass(frozen=True)
class SampleBrief:
    """Another sample of the same prompt, as a preference candidate."""

    sample_id: int
    run_id: int
    sample_index: int
    model: str
    thinking: str
    answer: str
    extracted_answer: str | None


@dataclass(frozen=True)
class QueueView:
    items: list[QueueItem]
    progress: LabelProgress

    def to_dict(self) -> dict[str, Any]:
        return {"items": [asdict(i) for i in self.items], "progress": self.progress.text, **asdict(self.progress)}


# --- small parsers shared by the UI and the API ---------------------------------------------------------------


def resolve_annotator(typed: str | None, username: str | None = None) -> str:
    """The annotator's name: the login (Gradio auth) when there is one, else the name typed in the tab."""
    name = (username or typed or "").strip()
    if not name:
        raise LabelingError("no annotator name: type your name (e.g. 'alice') in the Annotate tab before labelling")
    return name


def parse_rating(value: int | str) -> int:
    """A rating as a number, from a number or a word ("+1", "good", "neutral", "wrong", ...).

    Parsing only: whether the number is a rating (-1, 0 or +1) is the store's rule (``Store.add_label``), the
    one place it is checked, so a bad number is refused there with the step it was meant for.
    """
    if isinstance(value, int):  # bool included: the store refuses it
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    rating = RATING_WORDS.get(str(value).strip().lower())
    if rating is None:
        raise LabelingError(f"rating={value!r} is not one of -1 (wrong), 0 (neutral), +1 (good)")
    return rating


def parse_verdict(value: bool | str | None) -> bool | None:
    """True / False / None (no verdict) from a bool or "correct" / "incorrect" / "" ."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("correct", "true", "yes", "1"):
        return True
    if text in ("incorrect", "false", "no", "0"):
        return False
    if text in ("", "none", "no verdict", "unset"):
        return None
    raise LabelingError(f"verdict={value!r} is not 'correct', 'incorrect' or empty (no verdict)")


def parse_ids(value: Sequence[int] | str) -> list[int]:
    """Sample ids from a list or from text such as "3, 1 > 2"."""
    if isinstance(value, str):
        tokens = [t for t in re.split(r"[\s,;>]+", value) if t]
        if not all(t.isdigit() for t in tokens):
            raise LabelingError(f"{value!r} is not a list of sample ids; write them best first, e.g. '3, 1, 2'")
        return [int(t) for t in tokens]
    return [int(v) for v in value]


# --- the queue ----------------------------------------------------------------------------------------------


def label_queue(
    store: Store,
    annotator: str | None,
    *,
    run_id: int | None = None,
    model: str | None = None,
    prompt_search: str | None = None,
    unlabelled_first: bool = True,
    limit: int = 200,
) -> QueueView:
    """Samples to label (``annotator`` decides what "done" means; None = labels by anyone) and the progress."""
    filters: dict[str, Any] = {"run_id": run_id, "model": model or None, "prompt_search": prompt_search or None}
    items = store.label_queue(annotator=annotator, unlabelled_first=unlabelled_first, limit=limit, **filters)
    return QueueView(items=items, progress=store.label_progress(annotator, **filters))


def next_sample(store: Store, annotator: str | None, *, skip: int | None = None, **filters: Any) -> int | None:
    """The first sample the annotator (None = anyone) has not finished, other than ``skip``; None when all are
    done. ``filters`` are :func:`label_queue`'s; unfinished samples are looked for first, whatever the view sorts."""
    filters.pop("unlabelled_first", None)  # unfinished ones are the point, whatever the view sorts
    filters.update(model=filters.get("model") or None, prompt_search=filters.get("prompt_search") or None)
    for item in store.label_queue(annotator=annotator, unlabelled_first=True, limit=2, **filters):
        if not item.done and item.sample_id != skip:
            return item.sample_id
    return None


# --- opening a sample ---------------------------------------------------------------------------------------


def _run_of_sample(store: Store, sample_id: int, run_id: int | None = None) -> StoredRun:
    """The run holding the sample (``NotFound`` when there is no such sample); ``run_id``, when the caller knows
    it, saves looking the sample up."""
    if run_id is not None:
        run = store.get_run(run_id)
        if any(s.sample_id == sample_id for s in run.samples):
            return run
    return store.get_run(store.get_sample(sample_id).run_id)


def _stopped_at(labels: dict[int, LabelRecord]) -> int | None:
    """The step the annotator marked "first error here" (the earliest counts): PRM800K labelling stops there."""
    return min((label.step_index for label in labels.values() if label.first_error), default=None)


def _step_views(steps: list[StoredStep], labels: dict[int, LabelRecord]) -> tuple[list[StepView], int | None]:
    stop = _stopped_at(labels)
    views = []
    for step in steps:
        label = labels.get(step.step_id)
        views.append(
            StepView(
                step_id=step.step_id,
                index=step.index,
                source=step.source,
                text=step.text,
                rating=label.rating if label else None,
                comment=label.comment if label else "",
                first_error=bool(label and label.first_error),
                labelled_at=label.created_at if label else None,
                after_first_error=stop is not None and step.index > stop,
            )
        )
    return views, stop


def open_sample(store: Store, sample_id: int, annotator: str, *, run_id: int | None = None) -> SampleView:
    """The sample's prompt, text and active steps with ``annotator``'s current labels and verdict.

    ``run_id``, when the caller knows it, saves looking the sample's run up.
    """
    run = _run_of_sample(store, sample_id, run_id)
    sample = next(s for s in run.samples if s.sample_id == sample_id)
    steps = store.steps_for_sample(sample_id)  # fresh: a merge/split by someone else shows up at once
    labels = store.current_labels(sample_id, annotator)
    steps_view, stopped_at = _step_views(steps, labels)
    return SampleView(
        sample_id=sample_id,
        run_id=run.run_id,
        sample_index=sample.index,
        prompt=run.prompt,
        model=run.model,
        thinking=sample.thinking,
        answer=sample.answer,
        extracted_answer=sample.extracted_answer,
        stop_reason=sample.stop_reason,
        annotator=annotator,
        steps=steps_view,
        verdict=store.current_verdict(sample_id, annotator),
        first_error_index=first_error(label.to_rating() for label in labels.values()),
        stopped_at=stopped_at,
    )


def preference_candidates(store: Store, sample_id: int) -> list[SampleBrief]:
    """The other samples of the same prompt: its own run's, then those of up to ``MAX_OTHER_RUNS`` other runs.

    The newest runs of the same prompt (an indexed lookup by prompt id) are read, at most ``MAX_OTHER_RUNS``.
    """
    run = _run_of_sample(store, sample_id)
    runs = [run]
    for summary in store.list_runs(prompt_id=run.prompt_id, limit=MAX_OTHER_RUNS + 1):
        if summary.run_id != run.run_id and len(runs) <= MAX_OTHER_RUNS:
            runs.append(store.get_run(summary.run_id))
    return [
        SampleBrief(s.sample_id, r.run_id, s.index, r.model, s.thinking, s.answer, s.extracted_answer)
        for r in runs
        for s in r.samples
        if s.sample_id != sample_id and not s.error
    ]


# --- writing labels -----------------------------------------------------------------------------------------


def label_step(
    store: Store,
    sample_id: int,
    step_id: int,
    annotator: str,
    rating: int | str,
    *,
    comment: str = "",
    first_error: bool = False,
) -> int:
    """Append ``annotator``'s label for a step of the sample; return the label id.

    ``first_error`` marks the step -1 and stops the sample: labels on steps after the annotator's first error
    are refused until that step is relabelled. A step that is not one of the sample's current steps (replaced
    by a merge or split, deleted, or of another sample) is refused with ``StoreError``; nothing is dropped
    silently.
    """
    value = -1 if first_error else parse_rating(rating)
    steps, stopped_at = _step_views(store.steps_for_sample(sample_id), store.current_labels(sample_id, annotator))
    step = next((s for s in steps if s.step_id == step_id), None)
    if step is None:
        raise LabelingError(
            f"cannot label step {step_id}: it is no longer one of sample {sample_id}'s steps (it was replaced by "
            "a merge or split, or deleted); reload the sample and label the new step"
        )
    if step.after_first_error and not first_error:
        raise LabelingError(
            f"step #{step.index} comes after the first error at step #{stopped_at}, where PRM800K "
            f"stops labelling; relabel step #{stopped_at} first to go on"
        )
    return store.add_label(step_id, annotator, value, comment=comment.strip(), first_error=first_error)


def label_history(store: Store, step_id: int) -> list[LabelRecord]:
    """Every label the step was ever given, oldest first: changes of mind are kept."""
    return store.label_history(step_id)


def merge_steps(store: Store, sample_id: int, step_id: int, next_step_id: int | None = None) -> int:
    """Merge a step with the one after it (``next_step_id`` defaults to that one); return the new step id."""
    if next_step_id is None:
        steps = store.steps_for_sample(sample_id)
        ids = [s.step_id for s in steps]
        if step_id not in ids:
            raise LabelingError(f"step {step_id} is not a current step of sample {sample_id}; reload the sample")
        position = ids.index(step_id)
        if position + 1 >= len(ids):
            raise LabelingError(f"step #{steps[position].index} is the last step; merge it from the step before")
        next_step_id = ids[position + 1]
    return store.merge_steps(sample_id, step_id, next_step_id)


def split_step(store: Store, sample_id: int, step_id: int, at: int | str) -> tuple[int, int]:
    """Split a step of the sample in two at character ``at``, or just before the text ``at``; return the two new
    step ids. A step that is not one of the sample's current steps is refused, whichever way ``at`` is given."""
    step = next((s for s in store.steps_for_sample(sample_id) if s.step_id == step_id), None)
    if step is None:
        raise LabelingError(f"step {step_id} is not a current step of sample {sample_id}; reload the sample")
    if isinstance(at, str):
        position = step.text.find(at.strip()) if at.strip() else -1
        if position <= 0:
            raise LabelingError(
                f"cannot split step #{step.index} before {at!r}: that text is not inside the step (after its "
                "start); copy a few words from where the second part should begin"
            )
        at = position
    return store.split_step(step_id, int(at))


def set_verdict(store: Store, sample_id: int, annotator: str, correct: bool | str | None) -> int:
    """Record whether the whole sample is correct (``None`` withdraws the verdict); feeds SFT/KTO export."""
    return store.set_verdict(sample_id, annotator, parse_verdict(correct))


def add_preference(
    store: Store, chosen_sample_id: int, rejected_sample_id: int, annotator: str, reason: str = ""
) -> int:
    """Record that ``annotator`` prefers one sample over another of the same prompt."""
    return store.add_preference(int(chosen_sample_id), int(rejected_sample_id), annotator, reason.strip())


def add_ranking(store: Store, sample_ids_best_first: Sequence[int] | str, annotator: str, reason: str = "") -> str:
    """Record a ranking of samples of one prompt (best first) as its implied pairs; return the group id."""
    return store.add_ranking(parse_ids(sample_ids_best_first), annotator, reason.strip())
