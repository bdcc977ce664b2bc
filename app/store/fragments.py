"""Reusable SELECT fragments: the "current" views over the append-only label and verdict tables, and excerpts.

Current = the row with the highest id per (step, annotator) or (sample, annotator). Ids, not timestamps,
decide: they are unique and grow with every insert, while two clicks can share a timestamp.
Only labels on active steps count: a step replaced by a merge or split keeps its history but no current label.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute

from app.store.models import AutoStepLabel, SampleVerdict, Step, StepLabel


def current_label_ids(*where: ColumnElement[Any]) -> Select[int]:
    """Ids of the current label per (active step, annotator), narrowed by ``where`` (on Step / StepLabel)."""
    return _newest_on_active_steps(StepLabel.id, StepLabel.step_id, StepLabel.annotator_id, *where)


def current_auto_label_ids(*where: ColumnElement[Any]) -> Select[int]:
    """Ids of the current automatic label per (active step, source), narrowed by ``where`` (on Step /
    AutoStepLabel)."""
    return _newest_on_active_steps(AutoStepLabel.id, AutoStepLabel.step_id, AutoStepLabel.source, *where)


def _newest_on_active_steps(
    row_id: InstrumentedAttribute[int],
    step_id: InstrumentedAttribute[int],
    per: InstrumentedAttribute[Any],
    *where: ColumnElement[Any],
) -> Select[int]:
    return (
        select(func.max(row_id))
        .join(Step, Step.id == step_id)
        .where(Step.active.is_(True), *where)
        .group_by(step_id, per)
    )


def current_verdict_ids(*where: ColumnElement[Any]) -> Select[int]:
    """Ids of the current verdict per (sample, annotator), narrowed by ``where`` (on SampleVerdict)."""
    return (
        select(func.max(SampleVerdict.id)).where(*where).group_by(SampleVerdict.sample_id, SampleVerdict.annotator_id)
    )


def excerpt(column: Any, length: int = 160) -> ColumnElement[str]:
    """The first ``length`` characters of a text column, cut in the database (``substr`` is portable)."""
    return func.substr(column, 1, length)
