"""The labelling queue: which samples an annotator still has to label, and the "37 of 120" progress count.

A sample is in the queue when it has at least one active step. It is done for an annotator when every active
step has a current label by them, or when one of their current labels marks the first error (PRM800K stops
there). Those counts are kept as the data changes (``progress.py``: ``samples.n_steps`` and one
``sample_progress`` row per sample and annotator), so the queue reads one row per sample it shows instead of
counting steps and labels over the whole store on every click. Unfinished samples first walks the samples
newest run first and stops after ``limit``; the progress count is one pass over the counters.
"""

from __future__ import annotations

from typing import Any, TypedDict

from sqlalchemy import ColumnElement, Select, and_, case, false, func, not_, or_, select
from sqlalchemy.orm import Session
from typing_extensions import Unpack

from app.store.fragments import excerpt
from app.store.models import Prompt, Run, Sample, SampleProgress
from app.store.progress import ANYONE
from app.store.records import LabelProgress, QueueItem, same_named
from app.store.search import prompt_matches, walk_by_date
from app.store.sessions import Repository
from app.store.shared_rows import find_annotator_id


class QueueFilters(TypedDict, total=False):
    """What narrows the queue (each None or left out: no filter)."""

    run_id: int | None
    model: str | None
    prompt_search: str | None  # a piece of the prompt text, any case


def _progress_of(session: Session, annotator: str | None) -> int:
    """The ``sample_progress.annotator_id`` whose rows say what ``annotator`` did (-1: nobody, no rows)."""
    if annotator is None:
        return ANYONE
    found = find_annotator_id(session, annotator)
    return found if found is not None else -1


def _queue_select(session: Session, annotator: str | None, filters: QueueFilters) -> Select[Any]:
    """One row per sample with steps: ids, excerpt, model, n_steps, n_labelled and the done flag."""
    unknown = sorted(set(filters) - QueueFilters.__optional_keys__)
    if unknown:
        raise TypeError(f"unexpected queue filter(s) {', '.join(unknown)}")
    progress = SampleProgress.__table__.alias("progress")
    joined = and_(progress.c.sample_id == Sample.id, progress.c.annotator_id == _progress_of(session, annotator))
    done = func.coalesce(progress.c.done, false())
    stmt = (
        select(
            Sample.id.label("sample_id"),
            Sample.run_id,
            Sample.index.label("sample_index"),
            excerpt(Prompt.text, 120).label("prompt_excerpt"),
            Run.model,
            Sample.n_steps,
            func.coalesce(progress.c.n_labelled, 0).label("n_labelled"),
            done.label("done"),
        )
        .join(Run, Run.id == Sample.run_id)
        .join(Prompt, Prompt.id == Run.prompt_id)
        .outerjoin(progress, joined)
        .where(Sample.n_steps > 0, Run.deleted_at.is_(None))  # a deleted run's samples leave the queue
    )
    run_id, model, prompt_search = filters.get("run_id"), filters.get("model"), filters.get("prompt_search")
    if run_id is not None:
        stmt = stmt.where(Sample.run_id == run_id)
    if model:
        stmt = stmt.where(Run.model == model)
    if prompt_search and prompt_search.strip():
        term = prompt_search.strip()
        # A common term: "+ 0" keeps the planner off the prompt index, so it walks in the queue's order instead.
        prompt = Run.prompt_id + 0 if walk_by_date(session.connection(), term) else Run.prompt_id
        stmt = stmt.where(prompt.in_(select(Prompt.id).where(prompt_matches(term, session.get_bind().dialect.name))))
    return stmt


def _order(filters: QueueFilters) -> list[Any]:
    """Newest run first, then sample index; by the run's id with a model filter, so the walk follows the model's
    index (in run id order) and stops at the page."""
    newest = Run.id.desc() if filters.get("model") else Sample.run_id.desc()
    return [newest, Sample.index]


def _is_done(stmt: Select[Any]) -> ColumnElement[bool]:
    done = stmt.selected_columns.done
    return or_(done.is_(True), done == True)  # noqa: E712 - SQLite has no boolean type


def _whole_queue_progress(session: Session, progress_of: int) -> LabelProgress:
    """The unfiltered count from the indexes: every sample less those without steps, and those done, less the
    few that belong to deleted runs (``ix_samples_without_steps``, ``ix_sample_progress_annotator_id_done``, ``ix_runs_deleted``)."""
    deleted = select(Run.id).where(Run.deleted_at.is_not(None))
    in_deleted = select(Sample.id).where(Sample.run_id.in_(deleted), Sample.n_steps > 0)
    samples = select(func.count()).select_from(Sample)
    done = (
        select(func.count())
        .select_from(SampleProgress)
        .where(SampleProgress.annotator_id == progress_of, SampleProgress.done.is_(True))
    )
    total = (session.scalar(samples) or 0) - (session.scalar(samples.where(Sample.n_steps == 0)) or 0)
    total -= session.scalar(select(func.count()).select_from(in_deleted.subquery())) or 0
    labelled = session.scalar(done) or 0
    labelled -= session.scalar(done.where(SampleProgress.sample_id.in_(in_deleted))) or 0
    return LabelProgress(labelled=int(labelled), total=int(total))


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
        order = _order(filters)
        with self.sessions.read() as session:
            stmt = _queue_select(session, annotator, filters)
            if not unlabelled_first:
                rows = session.execute(stmt.order_by(*order).limit(limit)).all()
            else:  # two walks in the queue's order, each stopping at ``limit``: no sort of the whole store
                done = _is_done(stmt)
                rows = session.execute(stmt.where(not_(done)).order_by(*order).limit(limit)).all()
                if len(rows) < limit:
                    rows += session.execute(stmt.where(done).order_by(*order).limit(limit - len(rows))).all()
        return [same_named(QueueItem, row, done=bool(row.done)) for row in rows]

    def label_progress(self, annotator: str | None, **filters: Unpack[QueueFilters]) -> LabelProgress:
        """How many of the queue's samples (same filters as ``label_queue``) the annotator has done."""
        with self.sessions.read() as session:
            if not any(filters.values()):
                return _whole_queue_progress(session, _progress_of(session, annotator))
            stmt = _queue_select(session, annotator, filters)
            counted = stmt.with_only_columns(func.count(), func.sum(case((_is_done(stmt), 1), else_=0)))
            total, labelled = session.execute(counted).one()
        return LabelProgress(labelled=int(labelled or 0), total=int(total))
