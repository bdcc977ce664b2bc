"""Branch lineage columns of exported rows: which stored trace a branch run's sample continues.

Owns the four column names every export format carries (:data:`LINEAGE_COLUMNS`), their Arrow types, and
turning a run's branch link into those columns. A row from an ordinary run has all four set to null; a
preference row describes two samples, so it carries the four columns twice, prefixed ``chosen_`` and
``rejected_``. Indexes are 0-based like the steps of ``prm800k`` rows; ``branch_from_step`` = -1 means the
branch started from the prompt alone.

Pure: reads :class:`app.domain.BranchLink` records (the store's ``BranchInfo`` is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from app.domain import BranchLink

LINEAGE_COLUMNS: tuple[str, ...] = ("branch_of_run", "branch_of_sample", "branch_from_step", "branch_kind")
#: What the dataset card says about each column.
LINEAGE_HELP: dict[str, str] = {
    "branch_of_run": "the run this sample's run branched from (null: not a branch)",
    "branch_of_sample": "the sample of that run it continues, 0-based",
    "branch_from_step": "the last step of that sample kept before resampling, 0-based (-1: from the prompt)",
    "branch_kind": "resample, credit or think_longer (how the branch was made)",
}
PREFERENCE_SIDES: tuple[str, ...] = ("chosen_", "rejected_")


#: {run id: its branch link} for the runs that are branches; ordinary runs are absent.
Lineages = Mapping[int, BranchLink]


def lineage_columns(lineage: Lineages | None, run_id: int | None, prefix: str = "") -> dict[str, Any]:
    """The four columns for a sample of run ``run_id`` (all None unless that run is a branch)."""
    link = (lineage or {}).get(run_id) if run_id is not None else None
    if link is None:
        values: tuple[Any, ...] = (None, None, None, None)
    else:
        values = (link.parent_run_id, link.parent_sample_index, link.parent_step_index, link.kind)
    return {f"{prefix}{name}": value for name, value in zip(LINEAGE_COLUMNS, values, strict=True)}


def column_names(fmt: str) -> list[str]:
    """The lineage column names a format's rows carry."""
    prefixes = PREFERENCE_SIDES if fmt == "preference" else ("",)
    return [f"{prefix}{name}" for prefix in prefixes for name in LINEAGE_COLUMNS]


def arrow_fields(fmt: str) -> list[tuple[str, pa.DataType]]:
    """The Parquet fields of the lineage columns (explicit: an all-null column keeps its type)."""
    prefixes = PREFERENCE_SIDES if fmt == "preference" else ("",)
    types = (pa.int64(), pa.int64(), pa.int64(), pa.string())
    return [(f"{prefix}{name}", kind) for prefix in prefixes for name, kind in zip(LINEAGE_COLUMNS, types, strict=True)]
