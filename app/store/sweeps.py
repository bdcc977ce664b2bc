"""Sweeps: a settings grid run over a problem set. The sweep row is created first; its runs are ordinary runs
saved with ``sweep_id`` (``Runs.save_run``), so History and every other tab open them too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.store.errors import NotFound, StoreError
from app.store.models import Run, Sweep
from app.store.records import StoredRun, SweepSummary, same_named
from app.store.runs import load_runs
from app.store.sessions import Repository


class Sweeps(Repository):
    """Creating a sweep, listing sweeps, loading a sweep's runs."""

    def create_sweep(self, name: str, settings: dict[str, Any], problems: list[dict[str, Any]]) -> int:
        """Record a sweep (its settings grid and problem set) before its runs are saved with ``sweep_id``."""
        if not name.strip():
            raise StoreError("sweep name is empty; give the sweep a name, e.g. 'gsm8k budgets'")
        with self.sessions.write() as session:
            sweep = Sweep(name=name.strip(), settings=settings, problems=problems)
            session.add(sweep)
            session.flush()
            return sweep.id

    def sweep_runs(self, sweep_id: int) -> list[StoredRun]:
        """The sweep's runs, in the order they were saved."""
        with self.sessions.read() as session:
            if session.get(Sweep, sweep_id) is None:
                raise NotFound(f"sweep {sweep_id} does not exist; pick one from list_sweeps()")
            return load_runs(session, Run.sweep_id == sweep_id)

    def list_sweeps(self) -> list[SweepSummary]:
        """All sweeps, newest first, with how many runs each has so far."""
        n_runs = select(func.count(Run.id)).where(Run.sweep_id == Sweep.id).scalar_subquery()
        with self.sessions.read() as session:
            rows = session.execute(select(Sweep, n_runs).order_by(Sweep.created_at.desc(), Sweep.id.desc())).all()
            return [
                same_named(
                    SweepSummary,
                    sweep,
                    sweep_id=sweep.id,
                    settings=dict(sweep.settings),
                    problems=list(sweep.problems),
                    n_runs=count,
                )
                for sweep, count in rows
            ]
