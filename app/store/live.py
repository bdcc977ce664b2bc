"""Runs that are still going: the row written when generation starts, the cheap partial saves, the final save,
and the start-up sweep that marks runs a crashed server left behind as ``interrupted``.

A live run has ``lifecycle = 'running'`` and, until it finishes, ``status = 'error'`` with an "interrupted"
error, so a reader that knows nothing of ``lifecycle`` still sees an unfinished run as failed, never as done.
Its samples hold the text so far with stop reason ``error``; :meth:`finish_run` replaces them with the final
samples, their steps and their per-token data in one transaction. Steps are only made for finished runs, so no label can point at
a partial sample.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from app.domain import GenerationResult, SampleResult
from app.domain import Step as DomainStep
from app.store.base import StoreBase
from app.store.errors import NotFound
from app.store.models import RUN_KINDS, RUN_STATUSES, Run, Sample, Sweep, utcnow
from app.store.runs import _check_choice, check_id, check_user, sample_rows
from app.store.tokens import token_row

#: What an unfinished run's samples and the run itself say until it finishes (or forever, if it never does).
INTERRUPTED_ERROR = "interrupted: the server stopped before this run finished; the text so far is kept"


def partial_samples(samples: list[SampleResult]) -> GenerationResult:
    """Copies of ``samples`` marked as interrupted, wrapped for :func:`sample_rows`."""
    from dataclasses import replace

    from app.domain import GenerationSettings

    marked = [replace(s, stop_reason="error", error=INTERRUPTED_ERROR) for s in samples]
    return GenerationResult(model="", format="", settings=GenerationSettings(), samples=marked, prompt="")


class LiveRunsMixin(StoreBase):
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
        _check_choice("kind", kind, RUN_KINDS)
        with self._write() as session:
            if sweep_id is not None and session.get(Sweep, sweep_id) is None:
                raise NotFound(f"sweep {sweep_id} does not exist; create it with create_sweep() first")
            now = utcnow()
            run = Run(
                prompt_id=self._prompt_id(session, result.prompt),
                kind=kind,
                model=result.model,
                format=result.format,
                settings={**result.settings.to_dict(), "precision": result.precision},
                seed=result.settings.seed,
                status="error",
                error=INTERRUPTED_ERROR,
                gold=gold,
                sweep_id=sweep_id,
                label=label,
                messages=list(result.messages),
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
        with self._write() as session:
            if session.scalar(select(Run.lifecycle).where(Run.id == run_id)) != "running":
                return  # finished (or interrupted) meanwhile: a late checkpoint must not undo that
            session.execute(delete(Sample).where(Sample.run_id == run_id))
            for row in rows:
                row.run_id = run_id
                session.add(row)
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
        _check_choice("status", status, RUN_STATUSES)
        rows = sample_rows(result, steps)
        with self._write() as session:
            if session.get(Run, run_id) is None:
                raise NotFound(f"run {run_id} does not exist; it can't be finished")
            session.execute(delete(Sample).where(Sample.run_id == run_id))
            for row in rows:
                row.run_id = run_id
                session.add(row)
            session.flush()
            for sample, row in zip(result.samples, rows, strict=True):  # per-token data, as save_run keeps it
                if sample.tokens is not None:
                    session.add(token_row(row.id, sample.tokens))
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

    def interrupt_running_runs(self) -> int:
        """At start-up: every run still ``running`` was left by a server that died; mark it ``interrupted``.

        Assumes one server per database (a second server sharing it would see the first one's live runs
        marked too). Returns how many runs were marked.
        """
        with self._write() as session:
            result = session.execute(update(Run).where(Run.lifecycle == "running").values(lifecycle="interrupted"))
            return int(result.rowcount or 0)
