"""The labelling queue: which samples an annotator still has to label, and the "37 of 120" progress count.

A sample is in the queue when it has at least one active step. It is done for an annotator when every active
step has a current label by them, or when one of their current labels marks the first error (PRM800K stops
there). Everything is counted in SQL, so the queue stays one query however many samples there are.
"""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import ColumnElement, Integer, Select, case, false, func, or_, select, true
from sqlalchemy.orm import Session
from typing_extensions import Unpack

from app.store.fragments import current_label_ids, excerpt
from app.store.models import Prompt, Run, Sample, Step, StepLabel
from app.store.records import LabelProgress, QueueItem, same_named
from app.store.sessions import Repository
from app.store.shared_rows import find_annotator_id


class QueueFilters(TypedDict, total=False):
    """What narrows the queue (each None or left out: no filter)."""

    run_id: int | None
    model: str | None
    prompt_search: str | None  # a piece of the prompt text, any case


def _queue_select(session: Session, annotator: str | None, filters: QueueFilters) -> Select[Any]:
    """One row per sample with steps: ids, excerpt, model, n_steps, n_labelled and the done flag."""
    unknown = sorted(set(filters) - QueueFilters.__optional_keys__)
    if unknown:
        raise TypeError(f"unexpected queue filter(s) {', '.join(unknown)}")
    if annotator is None:
        by_annotator: ColumnElement[bool] = true()  # labels by anyone count
    else:
        found = find_annotator_id(session, annotator)
        by_annotator = StepLabel.annotator_id == found if found is not None else false()
    n_steps = (
        select(Step.sample_id, func.count(Step.id).label("n_steps"))
        .where(Step.active.is_(True))
        .group_by(Step.sample_id)
        .subquery()
    )
    labelled = (
        select(
            Step.sample_id,
            func.count(Step.id.distinct()).label("n_labelled"),
            func.max(case((StepLabel.first_error.is_(True), 1), else_=0)).label("first_error"),
        )
        .join(StepLabel, StepLabel.step_id == Step.id)
        .where(StepLabel.id.in_(current_label_ids(by_annotator)))
        .group_by(Step.sample_id)
        .subquery()
    )
    n_labelled = func.coalesce(labelled.c.n_labelled, 0)
    done = case((or_(n_labelled >= n_steps.c.n_steps, labelled.c.first_error == 1), 1), else_=0).cast(Integer)
    stmt = (
        select(
            Sample.id.label("sample_id"),
            Sample.run_id,
            Sample.index.label("sample_index"),
            excerpt(Prompt.text, 120).label("prompt_excerpt"),
            Run.model,
            n_steps.c.n_steps,
            n_labelled.label("n_labelled"),
            done.label("done"),
        )
        .join(Run, Run.id == Sample.run_id)
        .join(Prompt, Prompt.id == Run.prompt_id)
        .join(n_steps, n_steps.c.sample_id == Sample.id)
        .outerjoin(labelled, labelled.c.sample_id == Sample.id)
        .where(Run.deleted_at.is_(None))  # a deleted run's samples leave the queue; their labels stay
    )
    run_id, model, prompt_search = filters.get("run_id"), filters.get("model"), filters.get("prompt_search")
    if run_id is not None:
        stmt = stmt.where(Sample.run_id == run_id)
    if model:
        stmt = stmt.where(Run.model == model)
    if prompt_search and prompt_search.strip():
        stmt = stmt.where(Prompt.text.icontains(prompt_search.strip(), autoescape=True))
    return stmt


class LabelQueue(Repository):
    """The labelling queue and its progress count (see the module docstring)."""

    def label_queue(
        self,
        *,
        annotator: str | None,
        unlabelled_first: bool = True,
        limit: int = 200,
        **filters: Unpack[QueueFilters],
    ) -> list[QueueItem]:
        """Samples to label, newest runs first; with ``unlabelled_first`` the ones not done come first."""
        with self.sessions.read() as session:
            stmt = _queue_select(session, annotator, filters)
            order = [Sample.run_id.desc(), Sample.index]
            if unlabelled_first:
                order.insert(0, stmt.selected_columns.done)
            rows = session.execute(stmt.order_by(*order).limit(limit)).all()
        return [same_named(QueueItem, row, done=bool(row.done)) for row in rows]

    def label_progress(self, annotator: str | None, **filters: Unpack[QueueFilters]) -> LabelProgress:
        """How many of the queue's samples (same filters as ``label_queue``) the annotator has done."""
        with self.sessions.read() as session:
            queue = _queue_select(session, annotator, filters).subquery()
            total, labelled = session.execute(
                select(func.count(), func.coalesce(func.sum(queue.c.done), 0)).select_from(queue)
            ).one()
        return LabelProgress(labelled=int(labelled), total=int(total))
