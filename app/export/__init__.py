"""Export: domain records -> dataset rows -> JSONL / Parquet / Hugging Face dataset folder.

``formats`` is the table of formats (name, store query, row builder, empty hint) that the CLI, the UI and
the service read; ``rows`` builds rows (pure, per format), ``writers`` puts them in files, ``card`` writes the
dataset card. Nothing here imports gradio, torch or the store; ``app.services.exporting`` wires
the store's queries to these functions.
"""

from app.export.card import render_card
from app.export.formats import EXPORT_FORMATS, FORMATS, ExportFormat, build_rows, get_format, validate_options
from app.export.rows import NEUTRAL_POLICIES, ExportError, ExportFilters, RowBatch
from app.export.writers import HF_DATA_FILE, OUTPUTS, arrow_schema, resolve_output, write_rows

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "ExportFormat",
    "get_format",
    "validate_options",
    "HF_DATA_FILE",
    "NEUTRAL_POLICIES",
    "OUTPUTS",
    "ExportError",
    "ExportFilters",
    "RowBatch",
    "arrow_schema",
    "build_rows",
    "render_card",
    "resolve_output",
    "write_rows",
]
