"""What an export wrote, counted batch by batch while its rows stream to the file.

An export never holds all its rows: the store answers a page of records at a time, each page becomes a
:class:`~app.export.rows.RowBatch`, its rows go to the file and its counts into one :class:`ExportTally` --
rows, skip reasons, label balance, models, annotators, rows from branch runs. The dataset card and the summary
sentence read the tally once the last row is written. Every count adds up across batches (the label balance of
each format is a count per label), so the tally of the pages equals the batch of the whole selection.

Pure, like the rest of ``app.export``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.export.lineage import PREFERENCE_SIDES
from app.export.rows import RowBatch, sorted_unique


@dataclass
class ExportTally:
    """The running counts of one export (see the module docstring); ``rows`` is a count, not the rows."""

    format: str
    rows: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    label_balance: dict[str, int] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)
    from_branches: int = 0  # rows whose sample (either sample, for a preference) comes from a branch run
    conversational: bool = False
    neutral: str = "true"

    @classmethod
    def of(cls, batch: RowBatch) -> ExportTally:
        """The tally of one whole batch."""
        tally = cls(batch.format)
        tally.add(batch)
        return tally

    def add(self, batch: RowBatch) -> None:
        """Count one batch of rows (written, or about to be)."""
        self.rows += len(batch.rows)
        for reason, n in batch.skip_reasons.items():
            self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + n
        for label, n in batch.label_balance.items():
            self.label_balance[label] = self.label_balance.get(label, 0) + n
        self.models = sorted_unique([*self.models, *batch.models])
        self.annotators = sorted_unique([*self.annotators, *batch.annotators])
        self.from_branches += sum(1 for row in batch.rows if from_branch(batch.format, row))
        self.conversational, self.neutral = batch.conversational, batch.neutral

    @property
    def skipped(self) -> int:
        return sum(self.skip_reasons.values())

    @property
    def skip_summary(self) -> str:
        """The skip reasons with their counts, as the summary, the card and the empty-selection errors say them."""
        return "; ".join(f"{reason}: {n}" for reason, n in self.skip_reasons.items())


def from_branch(fmt: str, row: dict[str, Any]) -> bool:
    """Whether a row's sample (either one, for a preference row) comes from a branch run."""
    prefixes = PREFERENCE_SIDES if fmt == "preference" else ("",)
    return any(row.get(f"{prefix}branch_kind") is not None for prefix in prefixes)


def counted(batches: Iterable[RowBatch], tally: ExportTally) -> Iterator[dict[str, Any]]:
    """The rows of ``batches``, one at a time, each batch counted in ``tally`` as it is reached."""
    for batch in batches:
        tally.add(batch)
        yield from batch.rows
