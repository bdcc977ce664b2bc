"""The Export tab: the UI twin of ``python -m app export``.

Choose a format (``app.export.DATASET_FORMATS``: prm | preference | kto | sft | prm800k), an output (JSONL, Parquet, or a Hugging Face dataset
folder, zipped for download) and filters (annotator, model, since); get a file to download and the summary
sentence. An empty selection is an error with the exporter's message, never an empty file. A thin adapter over
``app.services.exporting.export_dataset``; the click is also the ``export`` API endpoint.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gradio as gr

from app.export import DATASET_FORMATS, NEUTRAL_POLICIES, OUTPUTS
from app.services import history
from app.services.exporting import ExportSource, export_dataset, parse_since
from app.services.runtime import Runtime
from app.ui.page import OnLoad
from app.ui.running import user_error

SUFFIX = {"jsonl": ".jsonl", "parquet": ".parquet", "hf": ""}
ALL = ""  # the filter value meaning "no filter"
CONVERSATIONAL = [name for name, f in DATASET_FORMATS.items() if f.conversational]
KEEP_SECONDS = 3600  # Gradio copies each download into its own cache; our copies may go after an hour


def export_folder(root: Path | None = None) -> Path:
    """A fresh folder for one export under ``<tmp>/tracelab-exports`` (Gradio serves files from the temp dir);
    folders of earlier exports older than ``KEEP_SECONDS`` are removed on the way."""
    root = root or Path(tempfile.gettempdir()) / "tracelab-exports"
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_SECONDS
    for old in root.iterdir():
        if old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root))


def run_export(
    store: ExportSource,
    fmt: str,
    output: str,
    annotator: str | None = None,
    model: str | None = None,
    since: str | None = None,
    neutral: str = "true",
    conversational: bool = False,
    *,
    folder: Path | None = None,
) -> tuple[str, str]:
    """Export into a fresh folder under the temp dir (which Gradio may serve); return (download path, message).

    A dataset folder (``output="hf"``) is zipped, since a browser downloads one file.
    """
    folder = folder or export_folder()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = folder / f"tracelab-{fmt}-{stamp}{SUFFIX.get(output, '')}"
    try:
        summary = export_dataset(
            store,
            fmt,
            out,
            output=output,
            annotator=(annotator or "").strip() or None,
            model=(model or "").strip() or None,
            since=parse_since(since),
            neutral=neutral,
            conversational=bool(conversational),
        )
    except Exception as exc:  # a refusal in one line (a bug says so); no folder left behind
        shutil.rmtree(folder, ignore_errors=True)
        raise user_error(exc) from exc
    path = summary.path
    if summary.output == "hf":
        path = Path(shutil.make_archive(str(out), "zip", root_dir=out.parent, base_dir=out.name))
    message = summary.message.replace(str(out), out.name)
    if summary.output == "hf":
        message += f" Download: {path.name} (unzip, then datasets.load_dataset(folder))."
    return str(path), message


def _choices(rt: Runtime) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    annotators = [("everyone", ALL), *((a, a) for a in history.annotator_names(rt.db))]
    models = [("all models", ALL), *((m, m) for m in history.model_names(rt.db))]
    return annotators, models


def build_tab(rt: Runtime) -> list[OnLoad]:
    """Build the Export tab inside the caller's ``gr.Tab``; returns its page-load hook (fresh filter menus)."""
    annotators, models = _choices(rt)
    with gr.Row():
        fmt = gr.Dropdown(
            [(f"{f.name}: {f.description}", f.name) for f in DATASET_FORMATS.values()],
            value="prm",
            label="Format",
            scale=3,
        )
        output = gr.Radio(
            list(OUTPUTS), value="parquet", label="Output", info="hf = a dataset folder with a card, zipped"
        )
    with gr.Row():
        annotator = gr.Dropdown(annotators, value=ALL, label="Annotator", allow_custom_value=True)
        model = gr.Dropdown(models, value=ALL, label="Model", allow_custom_value=True)
        since = gr.Textbox("", label="Labelled since (optional)", placeholder="2026-11-01")
    with gr.Row():
        neutral = gr.Radio(
            list(NEUTRAL_POLICIES), value="true", label="prm: a neutral (0) step is", info="true = not an error"
        )
        conversational = gr.Checkbox(label=f"Conversational rows ({' / '.join(CONVERSATIONAL)})")
    button = gr.Button("Export", variant="primary", elem_id="tl-export")
    download = gr.File(label="Download", elem_id="tl-export-file")
    summary = gr.Markdown(label="Summary", elem_id="tl-export-summary")

    def on_export(
        fmt: str, output: str, annotator: str, model: str, since: str, neutral: str, conversational: bool
    ) -> tuple[str, str]:
        return run_export(rt.db, fmt, output, annotator, model, since, neutral, conversational)

    button.click(
        on_export,
        [fmt, output, annotator, model, since, neutral, conversational],
        [download, summary],
        api_name="export",
        api_description=f"Export labels as {'|'.join(DATASET_FORMATS)} in {'|'.join(OUTPUTS)} (hf zipped); "
        "returns (file, summary message)",
    )

    def refresh() -> tuple[Any, Any]:
        names, model_ids = _choices(rt)
        return gr.update(choices=names), gr.update(choices=model_ids)

    return [OnLoad(refresh, None, [annotator, model])]
