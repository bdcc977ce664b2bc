"""Export use-case: query the store, build dataset rows, write them, summarise for the UI/CLI.

The UI's Export tab and ``python -m app export`` both call :func:`export_dataset`. This module
only wires things together: the options checked by ``app.export.check_options``, the store queries the format's
entry in ``app.export.DATASET_FORMATS`` names, the branch lineage of the runs behind the rows (``Store.lineage``),
the output kind, the card. It streams: the store answers one page of :data:`PAGE_SIZE` samples (or preferences)
at a time, keyset-paged by id (:func:`pages`); each page's rows go to the file and its counts into an
``ExportTally`` before the next page is read, so an export's memory stays the same whatever the store's size.
Row rules live in ``app.export.rows``; files in ``app.export.writers``. The store is passed in (anything with
the query methods of :class:`ExportSource`), so nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

from app.domain import BranchLink
from app.errors import InvalidInput
from app.export.card import render_card
from app.export.dataset_formats import (
    CONVERSATIONAL,
    NEUTRAL,
    SOFT,
    SOURCE,
    ExportFormat,
    ExportOptions,
    Query,
    Records,
    check_options,
)
from app.export.lineage import Lineages
from app.export.rows import ExportFilters
from app.export.tally import ExportTally, counted
from app.export.writers import arrow_schema, check_target, resolve_output, write_rows
from app.labelled_data import AutoLabelledSample, LabelledSample, PreferencePair

#: Samples (or preference pairs) per page of an export: a few MB of text in memory at once.
PAGE_SIZE = 256


class ExportSource(Protocol):
    """The store queries export needs (implemented by ``app.store``): each pages by id, answering the records
    after ``after`` (a sample id; a preference id for ``preference_pairs``), at most ``limit`` of them (samples
    or preferences; None: all), in id order."""

    def labelled_samples(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None,
        after: int = 0, limit: int | None = None,
    ) -> list[LabelledSample]: ...  # fmt: skip

    def preference_pairs(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None,
        after: int = 0, limit: int | None = None,
    ) -> list[PreferencePair]: ...  # fmt: skip

    def verdict_samples(
        self, *, annotator: str | None = None, model: str | None = None, since: datetime | None = None,
        after: int = 0, limit: int | None = None,
    ) -> list[LabelledSample]: ...  # fmt: skip

    def auto_labelled_samples(
        self, *, model: str | None = None, since: datetime | None = None, after: int = 0, limit: int | None = None
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


def _balance_text(tally: ExportTally) -> str:
    return ", ".join(f"{k} {v}" for k, v in tally.label_balance.items())


#: The id a query's records are paged by (the ``after`` of the next page is the last record's).
_CURSORS: dict[Query, Callable[[Any], int]] = {
    "labelled_samples": lambda sample: sample.sample_id,
    "verdict_samples": lambda sample: sample.sample_id,
    "auto_labelled_samples": lambda sample: sample.sample_id,
    "preference_pairs": lambda pair: pair.preference_id,
}


def query(
    store: ExportSource, name: Query, filters: ExportFilters, *, after: int = 0, limit: int | None = None
) -> list[Any]:
    """One page of records of one store query under ``filters`` (automatic labels have no annotator to filter by):
    those after id ``after``, at most ``limit`` samples or preferences (None: all)."""
    if name == "auto_labelled_samples":
        return store.auto_labelled_samples(model=filters.model, since=filters.since, after=after, limit=limit)
    return getattr(store, name)(
        annotator=filters.annotator, model=filters.model, since=filters.since, after=after, limit=limit
    )


def pages(
    store: ExportSource, queries: Iterable[Query], filters: ExportFilters, page_size: int = PAGE_SIZE
) -> Iterator[tuple[Records, Lineages]]:
    """Every page of records of ``queries`` (one after the other), each with the branch lineage of its runs."""
    for name in queries:
        after = 0
        while found := query(store, name, filters, after=after, limit=page_size):
            yield {name: found}, store.lineage(run_ids_of(found))
            after = _CURSORS[name](found[-1])


def stream_rows(
    store: ExportSource, spec: ExportFormat, options: ExportOptions, filters: ExportFilters, tally: ExportTally,
    page_size: int = PAGE_SIZE,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The rows of an export, page by page; each page is counted in ``tally`` when the stream reaches it."""
    batches = (
        spec.build(records, options, lineage)
        for records, lineage in pages(store, spec.queries(options), filters, page_size)
    )
    return counted(batches, tally)


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
    page_size: int = PAGE_SIZE,
) -> ExportSummary:
    """Export the current labels of ``store`` as ``fmt`` rows to ``out``, streamed ``page_size`` samples at a time.

    ``output`` is "jsonl", "parquet", "hf" (a dataset folder with a card) or None to infer it from
    ``out``'s suffix (.jsonl / .parquet, anything else is a folder). ``annotator``/``model``/
    ``since`` filter what the store returns. ``neutral`` ("true"|"false"|"skip") says how 0-rated
    steps become PRM labels; ``conversational`` writes preference/KTO rows as chat messages.
    ``source`` picks the labels of a prm export: ``human`` (people's), ``auto`` (``auto:mc`` rollout labels)
    or ``both`` (one row per sample and source, with provenance columns); ``soft`` writes float labels (see
    :mod:`app.export.auto_rows`). ``annotator`` filters human labels only (auto labels have no annotator).
    Raises :class:`~app.export.rows.ExportError` (an ``InvalidInput``) for bad options, an existing non-empty
    ``out`` without ``overwrite=True``, an ``out`` that can't be written, or a selection that yields no rows; in
    every error case nothing is written (a selection is known to yield rows before the file is opened).
    """
    out = Path(out).expanduser()
    spec, options = check_options(fmt, neutral=neutral, conversational=conversational, source=source, soft=soft)
    kind = resolve_output(out, output)
    check_target(out, kind, overwrite)  # fail before the (possibly slow) query

    filters = ExportFilters(annotator=annotator, model=model, since=since)
    tally = ExportTally(fmt)
    rows = stream_rows(store, spec, options, filters, tally, page_size)
    first = next(rows, None)  # reads pages until one gives a row: none at all is a refusal, and no file
    if first is None:
        raise spec.nothing_to_write(tally, filters, options)
    schema = arrow_schema(fmt, tally.conversational, soft=options.soft, provenance=options.provenance)
    created = datetime.now(timezone.utc)
    card = (lambda: render_card(tally, filters=filters, created=created)) if kind == "hf" else None
    write_rows(chain([first], rows), out, kind, schema, card=card, overwrite=overwrite)

    message = f"Exported {tally.rows} {fmt} rows to {out} ({kind})"
    if tally.skipped:
        message += f"; skipped {tally.skipped} ({tally.skip_summary})"
    message += f". Label balance: {_balance_text(tally)}."
    return ExportSummary(
        path=out,
        format=fmt,
        output=kind,
        rows=tally.rows,
        skipped=tally.skipped,
        label_balance=dict(tally.label_balance),
        message=message,
        skip_reasons=dict(tally.skip_reasons),
        models=list(tally.models),
        annotators=list(tally.annotators),
    )
