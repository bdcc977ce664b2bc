"""Branch lineage: which runs continue which stored trace (``run_branches``), written with the run itself.

Knows nothing of how branches are generated; ``save_run(branch=...)`` calls :func:`add_branch_link` inside its
transaction, and ``Branches`` answers "what is this run a branch of" and "which branches does this run have".
"""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import BranchLink
from app.store.checks import check_choice
from app.store.convert import branch_info
from app.store.errors import NotFound, StoreError
from app.store.models import BRANCH_KINDS, Run, RunBranch
from app.store.records import BranchInfo
from app.store.sessions import Repository


def add_branch_link(session: Session, run_id: int, link: BranchLink) -> None:
    """Record that run ``run_id`` continues ``link``'s trace; the parent must exist now."""
    check_choice("branch kind", link.kind, BRANCH_KINDS)
    if session.get(Run, link.parent_run_id) is None:
        raise NotFound(f"run {link.parent_run_id} does not exist (it may have been deleted); nothing was saved")
    if link.parent_sample_index < 0 or link.parent_step_index < -1:
        raise StoreError(
            f"parent sample {link.parent_sample_index} / step {link.parent_step_index} are not valid indexes "
            "(sample >= 0, step >= -1)"
        )
    session.add(RunBranch(run_id=run_id, **asdict(link)))  # a BranchLink is the row without its run


class Branches(Repository):
    """Which trace a run continues, and which branches a run has."""

    def branch_of(self, run_id: int) -> BranchInfo | None:
        """The trace run ``run_id`` continues, or None for an ordinary run."""
        with self.sessions.read() as session:
            row = session.scalar(select(RunBranch).where(RunBranch.run_id == run_id))
            if row is None:
                return None
            parent = session.get(Run, row.parent_run_id) if row.parent_run_id is not None else None
            return branch_info(row, deleted_parent=parent is not None and parent.deleted_at is not None)

    def branches_of(self, parent_run_id: int, sample_index: int | None = None) -> list[BranchInfo]:
        """Every branch of a run (optionally of one of its samples), oldest first."""
        stmt = select(RunBranch).where(RunBranch.parent_run_id == parent_run_id)
        if sample_index is not None:
            stmt = stmt.where(RunBranch.parent_sample_index == sample_index)
        with self.sessions.read() as session:
            return [branch_info(row) for row in session.scalars(stmt.order_by(RunBranch.id))]

    def lineage(self, run_ids: list[int]) -> dict[int, BranchInfo]:
        """{run_id: branch info} for those of ``run_ids`` that are branches (History and exports)."""
        if not run_ids:
            return {}
        with self.sessions.read() as session:
            rows = session.scalars(select(RunBranch).where(RunBranch.run_id.in_(run_ids)))
            return {row.run_id: branch_info(row) for row in rows}
