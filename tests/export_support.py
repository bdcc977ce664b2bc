"""Helpers for the export tests: dataset rows from hand-made records, the way the export service builds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.export.dataset_formats import check_options
from app.export.lineage import Lineages
from app.export.rows import ExportFilters, RowBatch


def build_rows(
    fmt: str,
    records: Sequence[Any] = (),
    *,
    filters: ExportFilters | None = None,
    lineage: Lineages | None = None,
    **options: Any,
) -> RowBatch:
    """Rows of ``fmt`` from ``records``: the options checked by ``check_options``, then the format's entry in the
    table, every store query it reads answering ``records`` (never an empty batch: an ExportError instead)."""
    spec, checked = check_options(fmt, **options)
    by_query = {query: records for query in spec.queries(checked)}
    return spec.rows(by_query, options=checked, filters=filters, lineage=lineage)
