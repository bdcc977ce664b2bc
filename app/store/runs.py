"""Runs, their samples and sweeps: saving what the engine produced, the History list, loading and deleting.

Knows nothing of labels beyond the fact that deleting a run deletes everything under it (the foreign keys
cascade in the database: samples, steps, step labels, verdicts, preferences).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import Session, joinedload

from app.domain import GenerationResult, sample_columns
from app.domain import Step as DomainStep
from app.store.base import StoreBase
from app.store.branches import add_branch_link
from app.store.convert import run_record, sample_record, step_record
from app.store.errors import NotFound, StoreError
from app.store.models import RUN_KINDS, RUN_STATUSES, STEP_SOURCES, Prompt, Run, Sample, Step, Sweep
from app.store.queries import excerpt
from app.store.records import BranchLink, RunSummary, StoredRun, StoredSample, StoredStep, SweepSummary
from app.store.tokens import load_traces, token_row


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise StoreError(f"{name}={value!r} is not one of {', '.join(allowed)}")


def load_active_steps(session: Session, sample_ids: list[int]) -> dict[int, list[StoredStep]]:
    """Active steps of each sample, in index order (samples without steps map to an empty list)."""
    steps: dict[int, list[StoredStep]] = defaultdict(list)
    if sample_ids:
        rows = session.scalars(
            select(Step)
            .where(Step.sample_id.in_(sample_ids), Step.active.is_(True))
            .order_by(Step.sample_id, Step.index, Step.id)
        )
        for row in rows:
            steps[row.sample_id].append(step_record(row))
    return steps


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


class RunsMixin(StoreBase):
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
        branch: BranchLink | None = None,
    ) -> int:
        """Save a run, its samples and their steps in one transaction; return the run id.

        ``steps[i]`` are the steps of ``result.samples[i]`` (pass ``[]`` when nothing was segmented).
        ``error`` defaults to ``result.error``. ``branch`` links the run to the trace it continues (same
        transaction: a branch is never saved without its lineage).
        """
        _check_choice("kind", kind, RUN_KINDS)
        _check_choice("status", status, RUN_STATUSES)
        if steps and len(steps) != len(result.samples):
            raise StoreError(
                f"got steps for {len(steps)} samples but the result has {len(result.samples)}; "
                "pass one list of steps per sample (or [] for none)"
            )
        for sample_steps in steps:
            for step in sample_steps:
                _check_choice("step source", step.source, STEP_SOURCES)
        with self._write() as session:
            if sweep_id is not None and session.get(Sweep, sweep_id) is None:
                raise NotFound(f"sweep {sweep_id} does not exist; create it with create_sweep() first")
            run = Run(
                prompt_id=self._prompt_id(session, result.prompt),
                kind=kind,
                model=result.model,
                format=result.format,
                # How the model ran rides along with the settings (a JSON column), so no migration is needed.
                settings={**result.settings.to_dict(), "precision": result.precision},
                seed=result.settings.seed,
                status=status,
                error=error if error is not None else result.error,
                gold=gold,
                sweep_id=sweep_id,
                label=label,
                messages=list(result.messages),
                seconds=result.seconds,
            )
            for i, s in enumerate(result.samples):
                sample = Sample(
                    **{name: getattr(s, name) for name in sample_columns()},
                    steps=[
                        Step(index=j, source=st.source, text=st.text, start=st.start, end=st.end)
                        for j, st in enumerate(steps[i] if steps else [])
                    ],
                )
                run.samples.append(sample)
            session.add(run)
            session.flush()
            for s, sample in zip(result.samples, run.samples, strict=True):
                if s.tokens is not None:
                    session.add(token_row(sample.id, s.tokens))
            if branch is not None:
                add_branch_link(session, run.id, branch)
            return run.id

    def list_runs(
        self,
        *,
        search: str | None = None,
        model: str | None = None,
        stop_reason: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Newest first. ``search`` matches the prompt text and the samples' answers, case-insensitively."""
        where: list[ColumnElement[bool]] = []
        term = (search or "").strip()
        if term:
            answer_hit = exists().where(
                Sample.run_id == Run.id,
                or_(
                    Sample.answer.icontains(term, autoescape=True),
                    Sample.extracted_answer.icontains(term, autoescape=True),
                ),
            )
            where.append(or_(Prompt.text.icontains(term, autoescape=True), answer_hit))
        if model:
            where.append(Run.model == model)
        if stop_reason:
            where.append(exists().where(Sample.run_id == Run.id, Sample.stop_reason == stop_reason))
        if kind:
            _check_choice("kind", kind, RUN_KINDS)
            where.append(Run.kind == kind)
        with self._read() as session:
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
            return [
                RunSummary(
                    run_id=run.id,
                    created_at=run.created_at,
                    kind=run.kind,
                    status=run.status,
                    model=run.model,
                    format=run.format,
                    prompt_excerpt=prompt_excerpt,
                    n_samples=len(per_run[run.id]),
                    answers=tuple(s.extracted_answer for s in per_run[run.id]),
                    stop_reasons=tuple(s.stop_reason for s in per_run[run.id]),
                    thinking_tokens=sum(s.thinking_tokens for s in per_run[run.id]),
                    seconds=run.seconds,
                    label=run.label,
                    sweep_id=run.sweep_id,
                    gold=run.gold,
                )
                for run, prompt_excerpt in rows
            ]

    def get_run(self, run_id: int) -> StoredRun:
        """The run with its samples and their active steps; ``NotFound`` if there is no such run."""
        with self._read() as session:
            found = load_runs(session, Run.id == run_id)
        if not found:
            raise NotFound(f"run {run_id} does not exist (it may have been deleted); pick a run from History")
        return found[0]

    def delete_run(self, run_id: int) -> None:
        """Delete a run and everything under it, labels included. Only for an explicit, confirmed user action."""
        with self._write() as session:
            if session.scalar(select(Run.id).where(Run.id == run_id)) is None:
                raise NotFound(f"run {run_id} does not exist; nothing was deleted")
            session.execute(delete(Run).where(Run.id == run_id))

    def get_sample(self, sample_id: int) -> StoredSample:
        """One sample with its active steps; ``NotFound`` if there is no such sample."""
        with self._read() as session:
            row = session.get(Sample, sample_id)
            if row is None:
                raise NotFound(f"sample {sample_id} does not exist (its run may have been deleted)")
            trace = load_traces(session, [sample_id]).get(sample_id)
            return sample_record(row, load_active_steps(session, [sample_id])[sample_id], trace)

    def list_models(self) -> list[str]:
        """Every model name that has runs, alphabetically (for filter menus)."""
        with self._read() as session:
            return list(session.scalars(select(Run.model).distinct().order_by(Run.model)))

    def count_runs(self) -> int:
        with self._read() as session:
            return session.scalar(select(func.count(Run.id))) or 0

    # --- sweeps ------------------------------------------------------------------------------------------

    def create_sweep(self, name: str, settings: dict[str, Any], problems: list[dict[str, Any]]) -> int:
        """Record a sweep (its settings grid and problem set) before its runs are saved with ``sweep_id``."""
        if not name.strip():
            raise StoreError("sweep name is empty; give the sweep a name, e.g. 'gsm8k budgets'")
        with self._write() as session:
            sweep = Sweep(name=name.strip(), settings=settings, problems=problems)
            session.add(sweep)
            session.flush()
            return sweep.id

    def sweep_runs(self, sweep_id: int) -> list[StoredRun]:
        """The sweep's runs, in the order they were saved."""
        with self._read() as session:
            if session.get(Sweep, sweep_id) is None:
                raise NotFound(f"sweep {sweep_id} does not exist; pick one from list_sweeps()")
            return load_runs(session, Run.sweep_id == sweep_id)

    def list_sweeps(self) -> list[SweepSummary]:
        """All sweeps, newest first, with how many runs each has so far."""
        n_runs = select(func.count(Run.id)).where(Run.sweep_id == Sweep.id).scalar_subquery()
        with self._read() as session:
            rows = session.execute(select(Sweep, n_runs).order_by(Sweep.created_at.desc(), Sweep.id.desc())).all()
            return [
                SweepSummary(
                    sweep_id=sweep.id,
                    name=sweep.name,
                    settings=dict(sweep.settings),
                    problems=list(sweep.problems),
                    created_at=sweep.created_at,
                    n_runs=count,
                )
                for sweep, count in rows
            ]
