"""Export use-case: query the store, build dataset rows, write them, summarise for the UI/CLI.

The UI's Export tab and ``python -m app export`` both call :func:`export_dataset`. This module
only wires things together: the store query the format's entry in ``app.export.EXPORT_FORMATS`` names, the
output kind, the card.
Row rules live in ``app.export.rows``; files in ``app.export.writers``. The store is passed in
(anything with the three query methods of :class:`ExportSource`), so nothing here imports
SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from app.domain import LabelledSample, PreferencePair
from app.export.card import render_card
from app.export.formats import get_format
from app.export.rows import ExportFilters, RowBatch, check_neutral
from app.export.writers import arrow_schema, check_target, resolve_output, write_rows


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
        raise ValueError(f"since={text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _balance_text(batch: RowBatch) -> str:
    return ", ".join(f"{k} {v}" for k, v in batch.label_balance.items())


def export_dataset(
    store: ExportSource,
    fmt: str,
    out: Path | str,
    *,
    output: str | None = None,
    annotator: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    neutral: str = "true",
    conversational: bool = False,
    overwrite: bool = False,
) -> ExportSummary:
    """Export the current labels of ``store`` as ``fmt`` rows to ``out``.

    ``output`` is "jsonl", "parquet", "hf" (a dataset folder with a card) or None to infer it from
    ``out``'s suffix (.jsonl / .parquet, anything else is a folder). ``annotator``/``model``/
    ``since`` filter what the store returns. ``neutral`` ("true"|"false"|"skip") says how 0-rated
    steps become PRM labels; ``conversational`` writes preference/KTO rows as chat messages.
    Raises :class:`~app.export.rows.ExportError` (a ValueError) for bad options, an existing
    non-empty ``out`` without ``overwrite=True``, or a selection that yields no rows; in every
    error case nothing is written.
    """
    out = Path(out).expanduser()
    spec = get_format(fmt)
    check_neutral(neutral)
    kind = resolve_output(out, output)
    check_target(out, kind, overwrite)  # fail before the (possibly slow) query

    filters = ExportFilters(annotator=annotator, model=model, since=since)
    records = getattr(store, spec.source)(annotator=annotator, model=model, since=since)
    batch = spec.rows(records, filters=filters, neutral=neutral, conversational=conversational)

    card = render_card(batch, filters=filters, created=datetime.now(timezone.utc)) if kind == "hf" else None
    write_rows(batch.rows, out, kind, arrow_schema(fmt, batch.conversational), card=card, overwrite=overwrite)

    message = f"Exported {len(batch.rows)} {fmt} rows to {out} ({kind})"
    if batch.skipped:
        reasons = "; ".join(f"{reason}: {n}" for reason, n in batch.skip_reasons.items())
        message += f"; skipped {batch.skipped} ({reasons})"
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
