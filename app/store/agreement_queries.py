"""The queries behind inter-annotator agreement, answered in the database at any store size.

Both walk the current labels (no later label by the same annotator on the same step, on an active step: the
same rows ``fragments.current_label_ids`` picks) pivoted to one row per step with each annotator's rating in
its own column, so the labels are never joined with themselves nor read into Python:

- :meth:`AgreementQueries.rating_pair_counts` counts the steps per combination of ratings (at most 4**K rows
  for K annotators, and never more than the steps rated twice), which Python folds into each pair's 3x3 table:
  all Cohen's kappa needs;
- :meth:`AgreementQueries.disagreeing_steps` walks the steps in id order and stops after ``limit`` that the
  two rated differently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, select
from sqlalchemy.orm import Session, aliased

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


def _pivot(annotator_ids: list[int], sample_id: int | None, *having: ColumnElement[bool]) -> Any:
    """One row per step rated by two or more of ``annotator_ids``: ``step_id`` and ``r0``, ``r1``, ... (their
    current ratings, NULL where one did not rate it)."""
    later = aliased(StepLabel)
    is_current = ~exists().where(
        later.step_id == StepLabel.step_id, later.annotator_id == StepLabel.annotator_id, later.id > StepLabel.id
    )
    where = [Step.active.is_(True), is_current, StepLabel.annotator_id.in_(annotator_ids)]
    if sample_id is not None:
        where.append(Step.sample_id == sample_id)
    ratings = [func.max(case((StepLabel.annotator_id == id_, StepLabel.rating))) for id_ in annotator_ids]
    return (
        select(StepLabel.step_id, *(rating.label(f"r{i}") for i, rating in enumerate(ratings)))
        .join(Step, Step.id == StepLabel.step_id)
        .where(*where)
        .group_by(StepLabel.step_id)
        .having(func.count() > 1, *(condition(ratings) for condition in having))
    )


def _names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Annotator.id, Annotator.name)).tuples().all())


class AgreementQueries(Repository):
    """Agreement's counts and disagreeing steps (see the module docstring)."""

    def rating_pair_counts(self, sample_id: int | None = None) -> list[RatingPairCount]:
        """Counts of rating pairs per annotator pair over the steps both rated (one sample, or all); names sorted
        within each pair."""
        with self.sessions.read() as session:
            names = _names(session)
            ids = sorted(names, key=names.__getitem__)
            if len(ids) < 2:
                return []
            pivot = _pivot(ids, sample_id).subquery()
            columns = [pivot.c[f"r{i}"] for i in range(len(ids))]
            rows = session.execute(select(*columns, func.count()).group_by(*columns)).tuples().all()
        cells: dict[tuple[int, int, int, int], int] = defaultdict(int)
        for *ratings, steps in rows:
            for i, j in combinations(range(len(ids)), 2):
                if ratings[i] is not None and ratings[j] is not None:
                    cells[(i, j, int(ratings[i]), int(ratings[j]))] += int(steps)
        return [
            RatingPairCount(names[ids[i]], names[ids[j]], rating_a, rating_b, steps)
            for (i, j, rating_a, rating_b), steps in sorted(cells.items())
        ]

    def disagreeing_steps(
        self, annotator_a: str, annotator_b: str, *, sample_id: int | None = None, limit: int = 200
    ) -> list[DisagreeingStep]:
        """The first ``limit`` steps (by id) the two rated differently, with their current ratings."""
        with self.sessions.read() as session:
            ids = {name: id_ for id_, name in _names(session).items()}
            if annotator_a not in ids or annotator_b not in ids or limit <= 0:
                return []
            pivot = (
                _pivot([ids[annotator_a], ids[annotator_b]], sample_id, lambda r: r[0] != r[1])
                .order_by(StepLabel.step_id)
                .limit(limit)
                .subquery()
            )
            rows = session.execute(
                select(Step.id, Step.sample_id, Step.index, Step.text, pivot.c.r0, pivot.c.r1)
                .join(pivot, pivot.c.step_id == Step.id)
                .order_by(Step.id)
            ).tuples()
            return [DisagreeingStep(*row) for row in rows]
