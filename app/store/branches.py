"""Branch lineage: which runs continue which stored trace (``run_branches``), written with the run itself.

Knows nothing of how branches are generated; ``save_run(branch=...)`` calls :func:`add_branch_link` inside its
transaction, and the mixin answers "what is this run a branch of" and "which branches does this run have".
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.base import StoreBase
from app.store.errors import NotFound, StoreError
from app.store.models import BRANCH_KINDS, Run, RunBranch
from app.store.records import BranchInfo, BranchLink


def add_branch_link(session: Session, run_id: int, link: BranchLink) -> None:
    """Record that run ``run_id`` continues ``link``'s trace; the parent must exist now."""
    if link.kind not in BRANCH_KINDS:
        raise StoreError(f"branch kind={link.kind!r} is not one of {', '.join(BRANCH_KINDS)}")
    if session.get(Run, link.parent_run_id) is None:
        raise NotFound(f"run {link.parent_run_id} does not exist (it may have been deleted); nothing was saved")
    if link.parent_sample_index < 0 or link.parent_step_index < -1:
        raise StoreError(
            f"parent sample {link.parent_sample_index} / step {link.parent_step_index} are not valid indexes "
            "(sample >= 0, step >= -1)"
        )
    session.add(
        RunBranch(
            run_id=run_id,
            parent_run_id=link.parent_run_id,
            parent_sample_index=link.parent_sample_index,
            parent_step_index=link.parent_step_index,
            kind=link.kind,
        )
    )


def _info(row: RunBranch, deleted_parent: bool = False) -> BranchInfo:
    return BranchInfo(
        run_id=row.run_id,
        parent_run_id=None if deleted_parent else row.parent_run_id,  # a deleted (hidden) parent: an ordinary run
        parent_sample_index=row.parent_sample_index,
        parent_step_index=row.parent_step_index,
        kind=row.kind,
        created_at=row.created_at,
    )


class BranchesMixin(StoreBase):
    def branch_of(self, run_id: int) -> BranchInfo | None:
        """The trace run ``run_id`` continues, or None for an ordinary run."""
        with self._read() as session:
            row = session.scalar(select(RunBranch).where(RunBranch.run_id == run_id))
            if row is None:
                return None
            parent = session.get(Run, row.parent_run_id) if row.parent_run_id is not None else None
            return _info(row, deleted_parent=parent is not None and parent.deleted_at is not None)

    def branches_of(self, parent_run_id: int, sample_index: int | None = None) -> list[BranchInfo]:
        """Every branch of a run (optionally of one of its samples), oldest first."""
        stmt = select(RunBranch).where(RunBranch.parent_run_id == parent_run_id)
        if sample_index is not None:
            stmt = stmt.where(RunBranch.parent_sample_index == sample_index)
        with self._read() as session:
            return [_info(row) for row in session.scalars(stmt.order_by(RunBranch.id))]

    def lineage(self, run_ids: list[int]) -> dict[int, BranchInfo]:
        """{run_id: branch info} for those of ``run_ids`` that are branches (History and exports)."""
        if not run_ids:
            return {}
        with self._read() as session:
            rows = session.scalars(select(RunBranch).where(RunBranch.run_id.in_(run_ids)))
            return {row.run_id: _info(row) for row in rows}
