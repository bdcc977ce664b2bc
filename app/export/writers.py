"""Dataset rows -> files: JSONL, Parquet, or a Hugging Face dataset folder.

This module owns file layout, Arrow schemas and the never-clobber rule. It does not know where
rows come from or what they mean beyond their column types. Every file is written to a hidden
``.partial`` sibling first and renamed into place, so a failed export never leaves a truncated
file that looks like data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from app.export.rows import ExportError

Output = Literal["jsonl", "parquet", "hf"]
OUTPUTS: tuple[str, ...] = ("jsonl", "parquet", "hf")

#: Where the rows live inside an HF dataset folder (the card's ``configs:`` points here).
HF_DATA_FILE = "data/train-00000-of-00001.parquet"
HF_CARD_FILE = "README.md"

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_PRM800K_STEP = pa.struct(
    [
        ("index", pa.int64()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("rating", pa.int64()),
        ("comment", pa.string()),
        ("first_error", pa.bool_()),
        ("labelled_at", pa.string()),
    ]
)


def arrow_schema(fmt: str, conversational: bool = False) -> pa.Schema:
    """The Parquet schema of a format, explicit so an all-null or empty column keeps its type."""
    text_or_messages = _MESSAGES if conversational else pa.string()
    schemas = {
        "prm": [("prompt", pa.string()), ("completions", pa.list_(pa.string())), ("labels", pa.list_(pa.bool_()))],
        "preference": [("prompt", text_or_messages), ("chosen", text_or_messages), ("rejected", text_or_messages)],
        "kto": [("prompt", text_or_messages), ("completion", text_or_messages), ("label", pa.bool_())],
        "sft": [("messages", _MESSAGES)],
        "prm800k": [
            ("prompt", pa.string()),
            ("model", pa.string()),
            ("annotator", pa.string()),
            ("steps", pa.list_(_PRM800K_STEP)),
            ("finish_reason", pa.string()),
            ("labelled_at_start", pa.string()),
            ("labelled_at_end", pa.string()),
        ],
    }
    if fmt not in schemas:
        raise ExportError(f"format={fmt!r} has no schema; expected one of {', '.join(schemas)}")
    return pa.schema(schemas[fmt])


def resolve_output(out: Path, output: str | None) -> str:
    """The output kind: explicit ``output`` wins; else ``.jsonl``/``.parquet`` by suffix, else a folder."""
    if output is not None:
        if output not in OUTPUTS:
            raise ExportError(f"output={output!r} is not one of {', '.join(OUTPUTS)} (or None to infer from the path)")
        return output
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    return "hf"


def check_target(path: Path, output: str, overwrite: bool = False) -> None:
    """Refuse to replace existing data unless ``overwrite``; refuse a file/folder mismatch always."""
    if not path.exists():
        return
    if output == "hf":
        if not path.is_dir():
            raise ExportError(
                f"{path} is a file, but output='hf' writes a dataset folder; choose a folder path, or a .jsonl/.parquet path"
            )
        if any(path.iterdir()) and not overwrite:
            raise ExportError(
                f"{path} already exists and is not empty; pass overwrite=True to replace its "
                f"{HF_CARD_FILE} and {HF_DATA_FILE}, or choose another folder"
            )
        return
    if path.is_dir():
        raise ExportError(
            f"{path} is a folder, but output={output!r} writes one file; choose a file path or output='hf'"
        )
    if path.stat().st_size > 0 and not overwrite:
        raise ExportError(
            f"{path} already exists and is not empty; pass overwrite=True to replace it, or choose another path"
        )


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One JSON object per line, UTF-8, non-ASCII kept readable."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    _write_atomically(path, write)


def write_parquet(rows: Sequence[dict[str, Any]], path: Path, schema: pa.Schema) -> None:
    """One Parquet file with an explicit schema."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    _write_atomically(path, lambda tmp: pq.write_table(table, tmp))


def write_text(text: str, path: Path) -> None:
    _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_hf_folder(rows: Sequence[dict[str, Any]], folder: Path, schema: pa.Schema, card: str) -> None:
    """``folder/data/train-00000-of-00001.parquet`` plus ``folder/README.md`` (the dataset card).

    The card's YAML ``configs:`` names the data file exactly, so ``datasets.load_dataset(folder)``
    loads this export and nothing else that may sit in the folder.
    """
    write_parquet(rows, folder / HF_DATA_FILE, schema)
    write_text(card, folder / HF_CARD_FILE)


def write_rows(
    rows: Sequence[dict[str, Any]],
    path: Path,
    output: str,
    schema: pa.Schema,
    *,
    card: str | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``rows`` as ``output`` at ``path`` after :func:`check_target`; ``card`` is required for "hf"."""
    if output not in OUTPUTS:
        raise ExportError(f"output={output!r} is not one of {', '.join(OUTPUTS)}")
    check_target(path, output, overwrite)
    if output == "jsonl":
        write_jsonl(rows, path)
    elif output == "parquet":
        write_parquet(rows, path, schema)
    else:
        if card is None:
            raise ExportError("output='hf' needs a dataset card; build one with app.export.card.render_card")
        write_hf_folder(rows, path, schema, card)
