"""Runs: saving what the engine produced (whole, or live while it runs), the History list, loading and deleting.

A live run is written when generation starts: ``lifecycle = 'running'`` and, until it finishes,
``status = 'error'`` with an "interrupted" error, so a reader that knows nothing of ``lifecycle`` still sees
an unfinished run as failed, never as done. Its samples hold the text so far with stop reason ``error``;
:meth:`Runs.finish_run` replaces them with the final samples and their steps in one transaction. Steps are
only made for finished runs, so no label can point at a partial sample. While it runs, its process refreshes
``heartbeat_at`` (:meth:`Runs.heartbeat_run`); at start-up :meth:`Runs.interrupt_running_runs` marks the runs
whose heartbeat stopped (their server or CLI process died) ``interrupted``.

Deleting is a soft delete: the run is hidden from History and the labelling queue but its rows stay, so labels
people gave its steps are never destroyed and exports keep their provenance. Who may delete is the services'
decision (``app.services.ownership``); the store only records who did.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from app.domain import BranchLink, GenerationResult, GenerationSettings, SampleResult
from app.domain import Step as DomainStep
from app.store.branches import add_branch_link
from app.store.checks import check_choice, check_id, check_user
from app.store.convert import run_record, run_summary, sample_record
from app.store.errors import NotFound, StoreError
from app.store.fragments import excerpt
from app.store.models import RUN_KINDS, RUN_STATUSES, Prompt, Run, Sample, Sweep, utcnow
from app.store.progress import refresh_progress
from app.store.records import RunSummary, StoredRun, StoredSample
from app.store.samples import load_active_steps, sample_rows
from app.store.search import run_matches, walk_by_date
from app.store.sessions import Repository
from app.store.shared_rows import prompt_id
from app.store.tokens import load_traces, token_row

#: Longest History search text: longer ones are refused (SQLite rejects a very long LIKE pattern).
SEARCH_MAX = 500
#: What an unfinished run's samples and the run itself say until it finishes (or forever, if it never does).
INTERRUPTED_ERROR = "interrupted: the server stopped before this run finished; the text so far is kept"


def load_runs(session: Session, where: ColumnElement[bool]) -> list[StoredRun]:
    """Runs matching ``where`` (oldest first) with their samples and active steps, in three queries."""
    runs = list(session.scalars(select(Run).options(joinedload(Run.prompt)).where(where).order_by(Run.id)))
    if not runs:
        return []
    samples = list(
        session.scalars(
            select(Sample).where(Sample.run_id.in_([r.id for r in runs])).order_by(Sample.run_id, Sample.index)
        )
    )
    steps = load_active_steps(session, [s.id for s in samples])
    traces = load_traces(session, [s.id for s in samples])
    by_run: dict[int, list[StoredSample]] = defaultdict(list)
    for sample in samples:
        by_run[sample.run_id].append(sample_record(sample, steps[sample.id], traces.get(sample.id)))
    return [run_record(run, by_run[run.id]) for run in runs]


def partial_samples(samples: list[SampleResult]) -> GenerationResult:
    """Copies of ``samples`` marked as interrupted, wrapped for :func:`sample_rows`."""
    marked = [replace(s, stop_reason="error", error=INTERRUPTED_ERROR) for s in samples]
    return GenerationResult(model="", format="", settings=GenerationSettings(), samples=marked, prompt="")


def _run_row(session: Session, result: GenerationResult, *, kind: str, sweep_id: int | None, **values: Any) -> Run:
    """The ``runs`` row of ``result`` (not added yet); ``values`` are the columns that differ between a whole
    save and a live one (status, error, seconds, ...)."""
    if sweep_id is not None and session.get(Sweep, sweep_id) is None:
        raise NotFound(f"sweep {sweep_id} does not exist; create it with create_sweep() first")
    return Run(
        prompt_id=prompt_id(session, result.prompt),
        kind=kind,
        model=result.model,
        format=result.format,
        # How the model ran rides along with the settings (a JSON column), so no migration is needed.
        settings={**result.settings.to_dict(), "precision": result.precision},
        seed=result.settings.seed,
        sweep_id=sweep_id,
        messages=list(result.messages),
        **values,
    )


def _replace_samples(session: Session, run_id: int, rows: list[Sample]) -> None:
    session.execute(delete(Sample).where(Sample.run_id == run_id))
    for row in rows:
        row.run_id = run_id
        session.add(row)


class Runs(Repository):
    """Saving, listing, loading and deleting runs (see the module docstring)."""

    def save_run(
        self,
        result: GenerationResult,
        steps: list[list[DomainStep]],
        *,
        kind: str = "playground",
        status: str = "done",
        error: str | None = None,
        gold: str | None = None,
        sweep_id: int | None = None,
        label: str | None = None,
        created_by: str | None = None,
        branch: BranchLink | None = None,
    ) -> int:
        """Save a run, its samples and their steps in one transaction; return the run id.

        ``steps[i]`` are the steps of ``result.samples[i]`` (pass ``[]`` when nothing was segmented).
        ``error`` defaults to ``result.error``. ``branch`` links the run to the trace it continues (same
        transaction: a branch is never saved without its lineage).
        """
        check_choice("kind", kind, RUN_KINDS)
        check_choice("status", status, RUN_STATUSES)
        rows = sample_rows(result, steps)
        with self.sessions.write() as session:
            run = _run_row(
                session,
                result,
                kind=kind,
                sweep_id=sweep_id,
                status=status,
                error=error if error is not None else result.error,
                gold=gold,
                label=label,
                seconds=result.seconds,
                created_by=check_user(created_by),
            )
            run.samples.extend(rows)
            session.add(run)
            session.flush()
            for s, sample in zip(result.samples, run.samples, strict=True):
                if s.tokens is not None:
                    session.add(token_row(sample.id, s.tokens))
            if branch is not None:
                add_branch_link(session, run.id, branch)
            refresh_progress(session, [sample.id for sample in run.samples])
            return run.id

    def begin_run(
        self,
        result: GenerationResult,
        *,
        kind: str = "playground",
        gold: str | None = None,
        sweep_id: int | None = None,
        label: str | None = None,
        created_by: str | None = None,
    ) -> int:
        """Write the row of a run that is starting (``result`` has its prompt and settings, no samples yet)."""
        check_choice("kind", kind, RUN_KINDS)
        with self.sessions.write() as session:
            now = utcnow()
            run = _run_row(
                session,
                result,
                kind=kind,
                sweep_id=sweep_id,
                status="error",
                error=INTERRUPTED_ERROR,
                gold=gold,
                label=label,
                seconds=0.0,
                created_by=check_user(created_by),
                lifecycle="running",
                heartbeat_at=now,
            )
            session.add(run)
            session.flush()
            return run.id

    def checkpoint_run(self, run_id: int, samples: list[SampleResult], seconds: float) -> None:
        """Save the text so far of a running run (its samples replace the previous checkpoint's)."""
        check_id("run", run_id)
        rows = sample_rows(partial_samples(samples), [])
        with self.sessions.write() as session:
            if session.scalar(select(Run.lifecycle).where(Run.id == run_id)) != "running":
                return  # finished (or interrupted) meanwhile: a late checkpoint must not undo that
            _replace_samples(session, run_id, rows)
            session.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow(), seconds=seconds))

    def finish_run(
        self,
        run_id: int,
        result: GenerationResult,
        steps: list[list[DomainStep]],
        *,
        status: str = "done",
        error: str | None = None,
    ) -> int:
        """Replace the running run's samples with the final ones and their steps; mark it finished."""
        check_id("run", run_id)
        check_choice("status", status, RUN_STATUSES)
        rows = sample_rows(result, steps)
        with self.sessions.write() as session:
            if session.get(Run, run_id) is None:
                raise NotFound(f"run {run_id} does not exist; it can't be finished")
            _replace_samples(session, run_id, rows)
            session.flush()
            for s, row in zip(result.samples, rows, strict=True):  # the per-token data, as save_run keeps it
                if s.tokens is not None:
                    session.add(token_row(row.id, s.tokens))
            refresh_progress(session, [row.id for row in rows])
            session.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    status=status,
                    error=error if error is not None else result.error,
                    seconds=result.seconds,
                    lifecycle=None,
                    heartbeat_at=utcnow(),
                )
            )
        return run_id

    def heartbeat_run(self, run_id: int) -> bool:
        """The running run's process is alive: refresh its ``heartbeat_at``. False once the run is no longer
        ``running`` (finished, or marked interrupted meanwhile): there is nothing left to keep alive."""
        check_id("run", run_id)
        with self.sessions.write() as session:
            beat = session.execute(
                update(Run).where(Run.id == run_id, Run.lifecycle == "running").values(heartbeat_at=utcnow())
            )
            return bool(cast("CursorResult[Any]", beat).rowcount)

    def interrupt_running_runs(self, *, stale_seconds: float) -> int:
        """Mark ``interrupted`` the runs still ``running`` whose process is gone: their heartbeat is older than
        ``stale_seconds`` (a row with no heartbeat at all: created longer ago than that).

        A run whose process is alive refreshes its heartbeat every few seconds (``app.services.recording``), so
        a live run of another server or CLI process sharing this database is never touched. The cutoff is this
        machine's clock against the writers' clocks: machines sharing one database need synchronised clocks.
        Returns how many runs were marked.
        """
        cutoff = utcnow() - timedelta(seconds=max(0.0, stale_seconds))
        stale = and_(
            Run.lifecycle == "running",
            or_(Run.heartbeat_at < cutoff, and_(Run.heartbeat_at.is_(None), Run.created_at < cutoff)),
        )
        with self.sessions.read() as session:  # usually none: no write lock taken, a read-only store is fine
            if session.scalar(select(exists().where(stale))) is not True:
                return 0
        with self.sessions.write() as session:
            marked = session.execute(update(Run).where(stale).values(lifecycle="interrupted"))
            return int(cast("CursorResult[Any]", marked).rowcount or 0)

    def list_runs(
        self,
        *,
        search: str | None = None,
        model: str | None = None,
        stop_reason: str | None = None,
        kind: str | None = None,
        prompt_id: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Newest first, deleted runs left out. ``search`` matches a piece of the prompt text or the samples'
        answers, in any case, through an index (``search.py``); one longer than :data:`SEARCH_MAX` characters is
        refused. ``prompt_id`` keeps the runs of that one prompt."""
        where: list[ColumnElement[bool]] = [Run.deleted_at.is_(None)]
        term = (search or "").strip()
        if len(term) > SEARCH_MAX:
            raise StoreError(f"the search text is {len(term)} characters long; use at most {SEARCH_MAX}")
        if prompt_id is not None:
            where.append(Run.prompt_id == prompt_id)
        if model:
            where.append(Run.model == model)
        if stop_reason:
            where.append(exists().where(Sample.run_id == Run.id, Sample.stop_reason == stop_reason))
        if kind:
            check_choice("kind", kind, RUN_KINDS)
            where.append(Run.kind == kind)
        with self.sessions.read() as session:
            if term:
                walk = walk_by_date(session.connection(), term)
                where.append(run_matches(term, self.sessions.engine.dialect.name, walk=walk))
            rows = session.execute(
                select(Run, excerpt(Prompt.text).label("prompt_excerpt"))
                .join(Prompt, Prompt.id == Run.prompt_id)
                .where(*where)
                .order_by(Run.created_at.desc(), Run.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            per_run: dict[int, list[Any]] = defaultdict(list)
            if rows:
                for sample in session.execute(
                    select(Sample.run_id, Sample.extracted_answer, Sample.stop_reason, Sample.thinking_tokens)
                    .where(Sample.run_id.in_([run.id for run, _ in rows]))
                    .order_by(Sample.run_id, Sample.index)
                ):
                    per_run[sample.run_id].append(sample)
            return [run_summary(run, prompt_excerpt, per_run[run.id]) for run, prompt_excerpt in rows]

    def get_run(self, run_id: int, *, include_deleted: bool = False) -> StoredRun:
        """The run with its samples and their active steps; ``NotFound`` if there is no such run (or it was
        deleted, unless ``include_deleted``)."""
        check_id("run", run_id)
        with self.sessions.read() as session:
            found = load_runs(session, Run.id == run_id)
        if not found:
            raise NotFound(f"run {run_id} does not exist (it may have been deleted); pick a run from History")
        if found[0].deleted and not include_deleted:
            raise NotFound(f"run {run_id} was deleted; pick another run from History")
        return found[0]

    def delete_run(self, run_id: int, by: str | None = None) -> None:
        """Hide a run from History and the labelling queue (a soft delete): every row stays, labels included.

        Only for an explicit, confirmed user action; whether ``by`` may do it is decided by the caller.
        """
        check_id("run", run_id)
        with self.sessions.write() as session:
            found = session.execute(select(Run.id, Run.deleted_at).where(Run.id == run_id)).first()
            if found is None or found.deleted_at is not None:
                raise NotFound(f"run {run_id} does not exist; nothing was deleted")
            session.execute(update(Run).where(Run.id == run_id).values(deleted_at=utcnow(), deleted_by=check_user(by)))

    def run_owner(self, run_id: int) -> str | None:
        """Who created the run (None for runs saved before owners were recorded); ``NotFound`` if it's gone."""
        check_id("run", run_id)
        with self.sessions.read() as session:
            found = session.execute(select(Run.created_by).where(Run.id == run_id, Run.deleted_at.is_(None))).first()
        if found is None:
            raise NotFound(f"run {run_id} does not exist; pick a run from History")
        return found.created_by

    def list_models(self) -> list[str]:
        """Every model name that has runs, alphabetically (for filter menus)."""
        with self.sessions.read() as session:
            return list(session.scalars(select(Run.model).distinct().order_by(Run.model)))

    def count_runs(self) -> int:
        """Runs not deleted."""
        with self.sessions.read() as session:
            return session.scalar(select(func.count(Run.id)).where(Run.deleted_at.is_(None))) or 0
