"""Export use-case: query the store, build dataset rows, write them, summarise for the UI/CLI.

The UI's Export tab and ``python -m app export`` both call :func:`export_dataset`. This module
only wires things together: the options checked by ``app.export.check_options``, the store queries the format's
entry in ``app.export.DATASET_FORMATS`` names, the branch lineage of the runs behind the rows (``Store.lineage``),
the output kind, the card. Row rules live in ``app.export.rows``; files in ``app.export.writers``. The store is
passed in (anything with the query methods of :class:`ExportSource`), so nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from app.domain import BranchLink
from app.errors import InvalidInput
from app.export.card import render_card
from app.export.dataset_formats import CONVERSATIONAL, NEUTRAL, SOFT, SOURCE, Query, check_options
from app.export.rows import ExportFilters, RowBatch
from app.export.writers import arrow_schema, check_target, resolve_output, write_rows
from app.labelled_data import AutoLabelledSample, LabelledSample, PreferencePair


class ExportSource(Protocol):
    """The store queries export needs (implemented by ``app.store``)."""

    def labelled_samples(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None
    ) -> list[LabelledSample]: ...

    def preference_pairs(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None
    ) -> list[PreferencePair]: ...

    def verdict_samples(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None
    ) -> list[LabelledSample]: ...

    def auto_labelled_samples(
        self, *, model: str | None = None, since: datetime | None = None
    ) -> list[AutoLabelledSample]: ...

    def lineage(self, run_ids: list[int]) -> dict[int, BranchLink]: ...


def run_ids_of(records: Iterable[Any]) -> list[int]:
    """Every run a set of export records comes from (a preference pair names two)."""
    ids: set[int] = set()
    for record in records:
        for name in ("run_id", "chosen_run_id", "rejected_run_id"):
            if isinstance(value := getattr(record, name, None), int):
                ids.add(value)
    return sorted(ids)


@dataclass(frozen=True)
class ExportSummary:
    """What one export wrote; ``message`` is the sentence the UI shows."""

    path: Path
    format: str
    output: str
    rows: int
    skipped: int
    label_balance: dict[str, int]
    message: str
    skip_reasons: dict[str, int] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)


def parse_since(text: str | None) -> datetime | None:
    """``--since`` / the Export tab's date: ISO date or date-time (a trailing ``Z`` means UTC); empty = no filter."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise InvalidInput(f"since={text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _balance_text(batch: RowBatch) -> str:
    return ", ".join(f"{k} {v}" for k, v in batch.label_balance.items())


def query(store: ExportSource, name: Query, filters: ExportFilters) -> list[Any]:
    """The records of one store query under ``filters`` (automatic labels have no annotator to filter by)."""
    if name == "auto_labelled_samples":
        return store.auto_labelled_samples(model=filters.model, since=filters.since)
    return getattr(store, name)(annotator=filters.annotator, model=filters.model, since=filters.since)


def export_dataset(
    store: ExportSource,
    fmt: str,
    out: Path | str,
    *,
    output: str | None = None,
    annotator: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    neutral: str = NEUTRAL.default,
    conversational: bool = CONVERSATIONAL.default,
    overwrite: bool = False,
    source: str = SOURCE.default,
    soft: bool = SOFT.default,
) -> ExportSummary:
    """Export the current labels of ``store`` as ``fmt`` rows to ``out``.

    ``output`` is "jsonl", "parquet", "hf" (a dataset folder with a card) or None to infer it from
    ``out``'s suffix (.jsonl / .parquet, anything else is a folder). ``annotator``/``model``/
    ``since`` filter what the store returns. ``neutral`` ("true"|"false"|"skip") says how 0-rated
    steps become PRM labels; ``conversational`` writes preference/KTO rows as chat messages.
    ``source`` picks the labels of a prm export: ``human`` (people's), ``auto`` (``auto:mc`` rollout labels)
    or ``both`` (one row per sample and source, with provenance columns); ``soft`` writes float labels (see
    :mod:`app.export.auto_rows`). ``annotator`` filters human labels only (auto labels have no annotator).
    Raises :class:`~app.export.rows.ExportError` (an ``InvalidInput``) for bad options, an existing non-empty
    ``out`` without ``overwrite=True``, an ``out`` that can't be written, or a selection that yields no rows; in
    every error case nothing is written.
    """
    out = Path(out).expanduser()
    spec, options = check_options(fmt, neutral=neutral, conversational=conversational, source=source, soft=soft)
    kind = resolve_output(out, output)
    check_target(out, kind, overwrite)  # fail before the (possibly slow) query

    filters = ExportFilters(annotator=annotator, model=model, since=since)
    records = {name: query(store, name, filters) for name in spec.queries(options)}
    lineage = store.lineage(run_ids_of(record for found in records.values() for record in found))
    batch = spec.rows(records, options=options, filters=filters, lineage=lineage)
    schema = arrow_schema(fmt, batch.conversational, soft=options.soft, provenance=options.provenance)
    card = render_card(batch, filters=filters, created=datetime.now(timezone.utc)) if kind == "hf" else None
    write_rows(batch.rows, out, kind, schema, card=card, overwrite=overwrite)

    message = f"Exported {len(batch.rows)} {fmt} rows to {out} ({kind})"
    if batch.skipped:
        message += f"; skipped {batch.skipped} ({batch.skip_summary})"
    message += f". Label balance: {_balance_text(batch)}."
    return ExportSummary(
        path=out,
        format=fmt,
        output=kind,
        rows=len(batch.rows),
        skipped=batch.skipped,
        label_balance=dict(batch.label_balance),
        message=message,
        skip_reasons=dict(batch.skip_reasons),
        models=list(batch.models),
        annotators=list(batch.annotators),
    )
