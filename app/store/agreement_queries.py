"""The queries behind inter-annotator agreement, answered in the database at any store size.

:meth:`AgreementQueries.rating_pair_counts` joins the current labels (``fragments.current_label_ids``) with
themselves by step and counts each (annotator A, annotator B, rating A, rating B): at most nine rows per pair,
all Cohen's kappa needs. :meth:`AgreementQueries.disagreeing_steps` fetches the steps a pair rated differently,
at most ``limit`` of them. Neither reads a label row into Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from app.store.fragments import current_label_ids
from app.store.models import Annotator, Step, StepLabel
from app.store.sessions import Repository


@dataclass(frozen=True)
class RatingPairCount:
    """How many steps annotator ``a`` rated ``rating_a`` and annotator ``b`` rated ``rating_b`` (``a`` < ``b``)."""

    annotator_a: str
    annotator_b: str
    rating_a: int
    rating_b: int
    steps: int


@dataclass(frozen=True)
class DisagreeingStep:
    """A step two annotators rated differently."""

    step_id: int
    sample_id: int
    step_index: int
    text: str
    rating_a: int
    rating_b: int


def _current(sample_id: int | None, *where: ColumnElement[bool]) -> Any:
    """(step, annotator, rating) of the current labels on active steps (of one sample, or all)."""
    if sample_id is not None:
        where = (*where, Step.sample_id == sample_id)
    return (
        select(StepLabel.step_id, StepLabel.annotator_id, StepLabel.rating)
        .where(StepLabel.id.in_(current_label_ids(*where)))
        .cte("current_labels")
    )


def _names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Annotator.id, Annotator.name)).tuples().all())


class AgreementQueries(Repository):
    """Agreement's counts and disagreeing steps (see the module docstring)."""

    def rating_pair_counts(self, sample_id: int | None = None) -> list[RatingPairCount]:
        """Counts of rating pairs per annotator pair over the steps both rated (one sample, or all); names sorted
        within each pair."""
        current = _current(sample_id)
        a, b = current.alias("a"), current.alias("b")
        with self.sessions.read() as session:
            rows = session.execute(
                select(a.c.annotator_id, b.c.annotator_id, a.c.rating, b.c.rating, func.count())
                .join(b, and_(a.c.step_id == b.c.step_id, a.c.annotator_id < b.c.annotator_id))
                .group_by(a.c.annotator_id, b.c.annotator_id, a.c.rating, b.c.rating)
            ).tuples()
            names = _names(session)
            found = []
            for id_a, id_b, rating_a, rating_b, steps in rows:
                (name_a, x), (name_b, y) = sorted([(names[id_a], rating_a), (names[id_b], rating_b)])
                found.append(RatingPairCount(name_a, name_b, int(x), int(y), int(steps)))
        return found

    def disagreeing_steps(
        self, annotator_a: str, annotator_b: str, *, sample_id: int | None = None, limit: int = 200
    ) -> list[DisagreeingStep]:
        """The first ``limit`` steps (by id) the two rated differently, with their current ratings."""
        with self.sessions.read() as session:
            ids = {name: id_ for id_, name in _names(session).items()}
            if annotator_a not in ids or annotator_b not in ids or limit <= 0:
                return []
            id_a, id_b = ids[annotator_a], ids[annotator_b]
            current = _current(sample_id, StepLabel.annotator_id.in_([id_a, id_b]))
            # One row per step with both ratings side by side: a single pass, no join of the labels with themselves.
            rating_a = func.max(case((current.c.annotator_id == id_a, current.c.rating)))
            rating_b = func.max(case((current.c.annotator_id == id_b, current.c.rating)))
            pivot = (
                select(current.c.step_id, rating_a.label("rating_a"), rating_b.label("rating_b"))
                .group_by(current.c.step_id)
                .having(rating_a != rating_b)
                .subquery()
            )
            rows = session.execute(
                select(Step.id, Step.sample_id, Step.index, Step.text, pivot.c.rating_a, pivot.c.rating_b)
                .join(pivot, pivot.c.step_id == Step.id)
                .order_by(Step.id)
                .limit(limit)
            ).tuples()
            return [DisagreeingStep(*row) for row in rows]
