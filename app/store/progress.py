"""Labelling progress kept as the data changes: ``samples.n_steps`` and the ``sample_progress`` rows.

The queue and its "37 of 120" count read these instead of counting steps and current labels over the whole
store on every click. Whatever changes a sample's active steps or its current labels (saving or finishing a
run, a label click, a merge or split) calls :func:`refresh_progress` for that sample in the same transaction;
the migration that introduced the counters (0005) calls it for every sample, and so does a bulk loader.

For each sample: ``n_steps`` = its active steps; one ``sample_progress`` row per annotator with a current label
on one of them (``n_labelled`` steps, ``first_error`` if any of those labels marks the first error, ``done``
when every active step is labelled or a first error is marked), and one row with ``annotator_id`` 0 for labels
by anyone (:data:`ANYONE`), counted the same way over everybody's current labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.store.fragments import current_label_ids
from app.store.models import Sample, SampleProgress, Step, StepLabel

#: ``sample_progress.annotator_id`` of the row that counts labels by anyone.
ANYONE = 0
#: Samples refreshed per statement (keeps IN lists short on both databases).
_CHUNK = 500


def refresh_progress(session: Session | Connection, sample_ids: Sequence[int] | None) -> None:
    """Recount ``n_steps`` and the progress rows of ``sample_ids`` (None: every sample) from the label tables."""
    if sample_ids is None:
        _refresh(session, true())
        return
    ids = sorted(set(sample_ids))
    for start in range(0, len(ids), _CHUNK):
        _refresh(session, Sample.id.in_(ids[start : start + _CHUNK]))


def _refresh(session: Session | Connection, samples: ColumnElement[bool]) -> None:
    active = select(func.count(Step.id)).where(Step.sample_id == Sample.id, Step.active.is_(True))
    session.execute(update(Sample).where(samples).values(n_steps=active.scalar_subquery()))
    chosen = select(Sample.id).where(samples)
    session.execute(delete(SampleProgress).where(SampleProgress.sample_id.in_(chosen)))
    in_samples = Step.sample_id.in_(chosen)
    for per_annotator in (True, False):
        session.execute(
            insert(SampleProgress).from_select(
                ["sample_id", "annotator_id", "n_labelled", "first_error", "done"], _counts(per_annotator, in_samples)
            )
        )


def _counts(per_annotator: bool, in_samples: ColumnElement[bool]) -> Any:
    """(sample, annotator, labelled steps, first error, done) over current labels on active steps."""
    n_labelled = func.count(Step.id.distinct())
    marked = func.max(case((StepLabel.first_error.is_(True), 1), else_=0))
    first_error = case((marked == 1, True), else_=False)
    done = case((or_(n_labelled >= Sample.n_steps, marked == 1), True), else_=False)
    annotator: ColumnElement[Any] = StepLabel.annotator_id if per_annotator else literal_column(str(ANYONE), Integer)
    grouped = [Step.sample_id, Sample.n_steps, *([StepLabel.annotator_id] if per_annotator else [])]
    return (
        select(Step.sample_id, annotator, n_labelled, first_error, done)
        .join(StepLabel, StepLabel.step_id == Step.id)
        .join(Sample, Sample.id == Step.sample_id)
        .where(and_(in_samples, StepLabel.id.in_(current_label_ids(in_samples))))
        .group_by(*grouped)
    )
