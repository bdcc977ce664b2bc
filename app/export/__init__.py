"""Export: domain records -> dataset rows -> JSONL / Parquet / Hugging Face dataset folder.

``dataset_formats`` is the table of formats (name, store query, row builder, options, empty hint) that the CLI,
the UI and the service read, and the one place export options are checked; ``rows`` (with ``auto_rows`` and
``prm800k``) builds rows (pure, per format), ``writers`` puts them in files as they stream in, ``tally`` counts
them on the way, ``card`` writes the dataset card.
Nothing here imports gradio, torch or the store; ``app.services.exporting`` wires the store's queries to these
functions.
"""

from app.export.card import render_card
from app.export.dataset_formats import (
    DATASET_FORMATS,
    OPTIONS,
    ExportFormat,
    ExportOption,
    ExportOptions,
    check_options,
    get_format,
)
from app.export.rows import NEUTRAL_POLICIES, ExportError, ExportFilters, RowBatch
from app.export.tally import ExportTally
from app.export.writers import HF_DATA_FILE, OUTPUTS, arrow_schema, resolve_output, write_rows

__all__ = [
    "DATASET_FORMATS",
    "OPTIONS",
    "ExportFormat",
    "ExportOption",
    "ExportOptions",
    "check_options",
    "get_format",
    "HF_DATA_FILE",
    "NEUTRAL_POLICIES",
    "OUTPUTS",
    "ExportError",
    "ExportFilters",
    "ExportTally",
    "RowBatch",
    "arrow_schema",
    "render_card",
    "resolve_output",
    "write_rows",
]
