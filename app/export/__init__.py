"""Export: domain records -> dataset rows -> JSONL / Parquet / Hugging Face dataset folder.

``rows`` builds rows (pure, per format), ``writers`` puts them in files, ``card`` writes the
dataset card. Nothing here imports gradio, torch or the store; ``app.services.exporting`` wires
the store's queries to these functions.
"""

from app.export.card import render_card
from app.export.rows import (
    FORMATS,
    NEUTRAL_POLICIES,
    ExportError,
    ExportFilters,
    RowBatch,
    build_rows,
    format_completion,
)
from app.export.writers import HF_DATA_FILE, OUTPUTS, arrow_schema, resolve_output, write_rows

__all__ = [
    "FORMATS",
    "HF_DATA_FILE",
    "NEUTRAL_POLICIES",
    "OUTPUTS",
    "ExportError",
    "ExportFilters",
    "RowBatch",
    "arrow_schema",
    "build_rows",
    "format_completion",
    "render_card",
    "resolve_output",
    "write_rows",
]
