"""Ownership and crash recovery: who created a run, soft deletion, and the live state of a running run.

Revision ID: 0002
Revises: 0004
Create Date: 2026-12-01

Only adds nullable columns to ``runs`` (so it is independent of other migrations):

- ``created_by``: the login that started the run (``local`` without ``--auth``); NULL for older runs.
- ``deleted_at`` / ``deleted_by``: a deleted run is hidden, never destroyed, so nobody's labels are lost.
- ``lifecycle``: ``running`` while the engine works (the row exists from the first token on), ``interrupted``
  when the server died before it finished; NULL once the run is finished (``status`` then says how).
- ``heartbeat_at``: when the partial text was last saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("created_by", lambda: sa.String(length=64)),
    ("deleted_at", sa.DateTime),
    ("deleted_by", lambda: sa.String(length=64)),
    ("lifecycle", lambda: sa.String(length=16)),
    ("heartbeat_at", sa.DateTime),
)


# Plain ADD/DROP COLUMN, never batch mode: on SQLite a batch rebuild drops and recreates ``runs``, and with
# foreign keys on, dropping it would cascade into every sample and label.


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column("runs", sa.Column(name, kind(), nullable=True))


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("runs", name)
