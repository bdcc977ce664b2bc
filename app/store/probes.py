"""Hint-faithfulness probes: the probe (hint, settings, problems with their hint targets) and the runs it made.

A probe's runs are ordinary runs (kind ``consistency``, so History and Self-consistency open them too),
linked here by problem and arm ("baseline" without the hint, "hinted" with it). Deleting a run removes
its link; deleting nothing else. Knows nothing of models or UI.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.store.checks import check_choice
from app.store.errors import NotFound, StoreError
from app.store.models import Probe, ProbeRun, Run
from app.store.records import ProbeRunRecord, ProbeSummary, same_named
from app.store.runs import load_runs
from app.store.sessions import Repository

PROBE_ARMS: tuple[str, ...] = ("baseline", "hinted")


class Probes(Repository):
    """Creating a probe, linking its runs, listing probes and loading a probe's runs."""

    def create_probe(
        self, name: str, hint: str, hint_correct: bool, settings: dict[str, Any], problems: list[dict[str, Any]]
    ) -> int:
        """Record a probe before its runs are linked to it with :meth:`link_probe_run`."""
        if not name.strip():
            raise StoreError("probe name is empty; give the probe a name")
        with self.sessions.write() as session:
            probe = Probe(name=name.strip(), hint=hint, hint_correct=hint_correct, settings=settings, problems=problems)
            session.add(probe)
            session.flush()
            return probe.id

    def link_probe_run(self, probe_id: int, run_id: int, problem_index: int, arm: str) -> None:
        check_choice("arm", arm, PROBE_ARMS)
        with self.sessions.write() as session:
            if session.get(Probe, probe_id) is None:
                raise NotFound(f"probe {probe_id} does not exist; create it with create_probe() first")
            session.add(ProbeRun(probe_id=probe_id, run_id=run_id, problem_index=problem_index, arm=arm))

    def get_probe(self, probe_id: int) -> ProbeSummary:
        found = [p for p in self.list_probes() if p.probe_id == probe_id]
        if not found:
            raise NotFound(f"probe {probe_id} does not exist; pick one from the list of past probes")
        return found[0]

    def probe_runs(self, probe_id: int) -> list[ProbeRunRecord]:
        """The probe's runs with their problem index and arm, in the order they were saved."""
        with self.sessions.read() as session:
            if session.get(Probe, probe_id) is None:
                raise NotFound(f"probe {probe_id} does not exist; pick one from the list of past probes")
            links = list(session.scalars(select(ProbeRun).where(ProbeRun.probe_id == probe_id).order_by(ProbeRun.id)))
            runs = {r.run_id: r for r in load_runs(session, Run.id.in_([link.run_id for link in links]))}
            return [
                ProbeRunRecord(link.problem_index, link.arm, runs[link.run_id]) for link in links if link.run_id in runs
            ]

    def list_probes(self) -> list[ProbeSummary]:
        """All probes, newest first, with how many runs each has so far."""
        n_runs = select(func.count(ProbeRun.id)).where(ProbeRun.probe_id == Probe.id).scalar_subquery()
        with self.sessions.read() as session:
            rows = session.execute(select(Probe, n_runs).order_by(Probe.created_at.desc(), Probe.id.desc())).all()
            return [
                same_named(
                    ProbeSummary, p, probe_id=p.id, settings=dict(p.settings), problems=list(p.problems), n_runs=count
                )
                for p, count in rows
            ]
