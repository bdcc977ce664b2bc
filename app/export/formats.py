"""The export formats: one table (:data:`EXPORT_FORMATS`) that the CLI, the Export tab and the export service read.

Each :class:`ExportFormat` names the format, says what it is for, which store query feeds it (a method of
``app.services.exporting.ExportSource``), how its rows are built (``app.export.rows``) and what to tell a person
whose selection yields no rows. Adding a format is one entry here (plus its row builder and Arrow schema).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.export.lineage import Lineages
from app.export.rows import (
    ExportError,
    ExportFilters,
    RowBatch,
    check_neutral,
    kto_rows,
    preference_rows,
    prm800k_rows,
    prm_rows,
    sft_rows,
)

#: The store queries that feed exports (methods of ``ExportSource``).
Source = Literal["labelled_samples", "preference_pairs", "verdict_samples"]
#: Builds a format's rows from the query's records, the neutral policy, the conversational switch and the
#: branch lineage of the records' runs.
Builder = Callable[[Sequence[Any], str, bool, Lineages | None], RowBatch]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, a one-line description, its store query, its row builder, its empty hint."""

    name: str
    description: str
    source: Source
    build: Builder
    empty: str  # what the empty-selection message calls its input
    hint: str  # how a person makes some
    conversational: bool = False  # has a conversational (message-list) form

    def rows(
        self, records: Sequence[Any], *, filters: ExportFilters | None = None, neutral: str = "true",
        conversational: bool = False, lineage: Lineages | None = None,
    ) -> RowBatch:  # fmt: skip
        """The rows of ``records`` (``lineage``: {run id: branch link} of the branch runs among them); never an
        empty batch (an :class:`ExportError` naming the filters instead)."""
        check_neutral(neutral)
        batch = self.build(records, neutral, conversational, lineage)
        if batch.rows:
            return batch
        where = (filters or ExportFilters()).describe()
        if batch.skipped:
            reasons = "; ".join(f"{reason}: {n}" for reason, n in batch.skip_reasons.items())
            raise ExportError(
                f"No {self.name} rows to write: the {batch.skipped} samples matching ({where}) were all skipped "
                f"({reasons}). Finish labelling them in the Annotate tab, or widen the filters."
            )
        raise ExportError(f"No {self.empty} match ({where}): {self.hint}, or widen the filters.")


_LABEL_FIRST = "label some steps in the Annotate tab first"

EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "prm",
            "TRL stepwise supervision for process reward models: prompt, completions (steps), labels (bool per step)",
            "labelled_samples",
            lambda records, neutral, conv, lineage: prm_rows(records, neutral, lineage),  # type: ignore[arg-type]  # checked first
            "labelled samples",
            _LABEL_FIRST,
        ),
        ExportFormat(
            "preference",
            "TRL preference pairs for DPO / reward modelling: prompt, chosen, rejected",
            "preference_pairs",
            lambda records, neutral, conv, lineage: preference_rows(records, conv, lineage),
            "preference pairs",
            "pick the better of two traces in the Annotate tab first",
            conversational=True,
        ),
        ExportFormat(
            "kto",
            "TRL unpaired preference for KTO: prompt, completion, label (a person's correct/incorrect verdict)",
            "verdict_samples",
            lambda records, neutral, conv, lineage: kto_rows(records, conv, lineage),
            "samples with a correct/incorrect verdict",
            "mark some samples correct or incorrect in the Annotate tab first",
            conversational=True,
        ),
        ExportFormat(
            "sft",
            "Supervised fine-tuning conversations (thinking kept) from samples a person marked correct",
            "verdict_samples",
            lambda records, neutral, conv, lineage: sft_rows(records, lineage),
            "samples marked correct",
            "mark some samples correct in the Annotate tab first",
        ),
        ExportFormat(
            "prm800k",
            "PRM800K-like step ratings (-1/0/+1) with annotator, comments and timing; lossless",
            "labelled_samples",
            lambda records, neutral, conv, lineage: prm800k_rows(records, lineage),
            "labelled samples",
            _LABEL_FIRST,
        ),
    )
}

#: Every export format with its one-line description (the card, the CLI help and the UI show these).
FORMATS: dict[str, str] = {name: f.description for name, f in EXPORT_FORMATS.items()}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; an :class:`ExportError` listing the formats otherwise."""
    try:
        return EXPORT_FORMATS[name]
    except KeyError:
        raise ExportError(f"format={name!r} is not one of {', '.join(EXPORT_FORMATS)}") from None


def validate_options(fmt: str, neutral: str = "true") -> None:
    """Raise :class:`ExportError` naming a bad ``fmt`` or ``neutral`` and the allowed values."""
    get_format(fmt)
    check_neutral(neutral)


def build_rows(
    fmt: str,
    *,
    samples: Sequence[Any] = (),
    pairs: Sequence[Any] = (),
    filters: ExportFilters | None = None,
    neutral: str = "true",
    conversational: bool = False,
    lineage: Lineages | None = None,
) -> RowBatch:
    """Rows of ``fmt``: ``pairs`` feed the formats whose source is preference pairs, ``samples`` the others."""
    spec = get_format(fmt)
    check_neutral(neutral)
    records = pairs if spec.source == "preference_pairs" else samples
    return spec.rows(records, filters=filters, neutral=neutral, conversational=conversational, lineage=lineage)
