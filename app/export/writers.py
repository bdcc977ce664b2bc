"""Dataset rows -> files: JSONL, Parquet, or a Hugging Face dataset folder.

This module owns file layout, Arrow schemas and the never-clobber rule. It does not know where
rows come from or what they mean beyond their column types. Rows are streamed: any iterable will do, and
none is held longer than it takes to write it (JSONL line by line; Parquet through one ``ParquetWriter``, a row
group of :data:`ROW_GROUP_ROWS` rows at a time, all with the one explicit schema), so an export's memory does
not grow with its size. Every file is written to a hidden
``.<name>.<pid>.partial`` sibling first and ``os.replace``-d into place, so a failed export never leaves a
truncated file that looks like data; the temp file goes on any error, Ctrl-C or SIGTERM, and leftovers of a
killed export (its pid gone) are removed by the next one. Only regular files are ever replaced. A target that
cannot be written (no permission, a read-only or full disk, a file where a folder should be) is an
:class:`~app.export.rows.ExportError` naming the path and the fix, not a raw ``OSError``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from app.export.lineage import arrow_fields
from app.export.rows import ExportError

Output = Literal["jsonl", "parquet", "hf"]
OUTPUTS: tuple[str, ...] = ("jsonl", "parquet", "hf")

#: Where the rows live inside an HF dataset folder (the card's ``configs:`` points here).
HF_DATA_FILE = "data/train-00000-of-00001.parquet"
HF_CARD_FILE = "README.md"
#: Rows per Parquet row group: what a streamed Parquet export holds in memory at once (a few MB of text).
ROW_GROUP_ROWS = 1_000
#: A dataset card, or what renders it once the rows are written (a streamed export counts them on the way).
Card = str | Callable[[], str]

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


#: The columns of a ``prm`` row that says whose labels it carries (``source`` auto or both, see ``app.export.auto_rows``).
_PROVENANCE = [
    ("label_source", pa.string()),
    ("annotator", pa.string()),
    ("auto_rollouts", pa.int64()),
    ("auto_target", pa.string()),
]


def arrow_schema(fmt: str, conversational: bool = False, *, soft: bool = False, provenance: bool = False) -> pa.Schema:
    """The Parquet schema of a format (its lineage columns last), explicit so an all-null column keeps its type.

    ``conversational``: preference/kto rows hold message lists; ``soft``: prm labels are floats; ``provenance``: prm
    rows carry the label-source columns.
    """
    text_or_messages = _MESSAGES if conversational else pa.string()
    labels = pa.list_(pa.float64() if soft else pa.bool_())
    schemas = {
        "prm": [("prompt", pa.string()), ("completions", pa.list_(pa.string())), ("labels", labels)]
        + (_PROVENANCE if provenance else []),
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
    return pa.schema(schemas[fmt] + arrow_fields(fmt))


def resolve_output(out: Path, output: str | None) -> str:
    """The output kind: explicit ``output`` wins; else ``.jsonl``/``.parquet`` by suffix, else a folder."""
    if output is not None:
        if output not in OUTPUTS:
            raise ExportError(
                f"output={output!r} is not one of {', '.join(OUTPUTS)}; pick one, or leave it out to go by the path's suffix"
            )
        return output
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    return "hf"


@contextmanager
def _writable(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while checking or writing ``path`` into an :class:`ExportError` naming it and the fix."""
    try:
        yield
    except OSError as exc:
        raise ExportError(
            f"{path} could not be written ({exc.strerror or exc}); choose a path in a folder you can write to, "
            "on a disk with free space"
        ) from exc


def check_target(path: Path, output: str, overwrite: bool = False) -> None:
    """The target must be absent, or (with ``overwrite``) a regular file -- or, for "hf", a folder. A device
    (``/dev/null``), a FIFO, a socket or a symbolic link is never replaced, and neither is an existing file,
    empty or not, without ``overwrite``. A target that can't be inspected is an :class:`ExportError` too."""
    with _writable(path):
        _check_target(path, output, overwrite)


def _check_target(path: Path, output: str, overwrite: bool) -> None:
    if not os.path.lexists(path):
        return
    if output == "hf":
        if path.is_symlink() or not path.is_dir():
            raise ExportError(
                f"{path} is a file, but a Hugging Face dataset (output hf) is a folder; choose a folder path, "
                "or a .jsonl/.parquet path"
            )
        if any(path.iterdir()) and not overwrite:
            raise ExportError(
                f"{path} already exists and is not empty; add --overwrite to replace its "
                f"{HF_CARD_FILE} and {HF_DATA_FILE}, or choose another folder"
            )
        return
    if path.is_dir() and not path.is_symlink():
        raise ExportError(
            f"{path} is a folder, but a {output} export is one file; choose a file path, or output hf for a folder"
        )
    _check_replaceable(path)
    if not overwrite:
        raise ExportError(f"{path} already exists; add --overwrite to replace it, or choose another path")


def _check_replaceable(path: Path) -> None:
    """``ExportError`` unless ``path`` is absent or a regular file (never follows a link)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ExportError(f"{path} is {kind}; an export only replaces regular files. Choose another path")


_KINDS = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFDIR: "a folder",
}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(folder: Path) -> list[Path]:
    """Remove ``.<name>.<pid>.partial`` files that an export killed mid-write left in ``folder`` (their process is
    gone); return them. Another running export's temp file is left alone."""
    removed = []
    if not folder.is_dir():
        return removed
    for leftover in folder.glob(".*.partial"):
        pid = leftover.name[: -len(".partial")].rsplit(".", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)) and stat.S_ISREG(os.lstat(leftover).st_mode):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


class _Terminated(Exception):
    """SIGTERM arrived mid-write: raised so the temp file is removed on the way out."""


@contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """While writing in the main thread, SIGTERM raises (so ``finally`` blocks run) instead of killing outright;
    SIGINT already raises ``KeyboardInterrupt``. Elsewhere (a server's worker thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _Terminated(f"export interrupted by signal {signum}; nothing was written")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write to ``.<name>.<pid>.partial`` in the same folder, then ``os.replace`` it onto ``path``; the temp file
    is removed on every error, Ctrl-C and SIGTERM, so a failed export leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_replaceable(path)
    clean_leftovers(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with _terminate_cleanly():
            write(partial)
            os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """One JSON object per line, UTF-8, non-ASCII kept readable; each row written as it comes."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    _write_atomically(path, write)


def row_groups(rows: Iterable[dict[str, Any]], size: int = ROW_GROUP_ROWS) -> Iterator[list[dict[str, Any]]]:
    """``rows`` in lists of ``size`` (the last one shorter), taken from the iterable as they are needed."""
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def write_parquet(rows: Iterable[dict[str, Any]], path: Path, schema: pa.Schema) -> None:
    """One Parquet file with an explicit schema, written a row group at a time (no rows: one empty group)."""

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, schema) as writer:
            empty = True
            for chunk in row_groups(rows):
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                empty = False
            if empty:
                writer.write_table(schema.empty_table())

    try:
        _write_atomically(path, write)
    finally:
        pa.default_memory_pool().release_unused()  # hand Arrow's freed buffers back to the system


def write_text(text: str, path: Path) -> None:
    _write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_hf_folder(rows: Iterable[dict[str, Any]], folder: Path, schema: pa.Schema, card: Card) -> None:
    """``folder/data/train-00000-of-00001.parquet`` plus ``folder/README.md`` (the dataset card, rendered after
    the rows are written when ``card`` is a callable).

    The card's YAML ``configs:`` names the data file exactly, so ``datasets.load_dataset(folder)``
    loads this export and nothing else that may sit in the folder. A folder this call created is removed
    again (when still empty) if writing fails.
    """
    data = folder / HF_DATA_FILE
    made = [d for d in (data.parent, folder) if not os.path.lexists(d)]  # innermost first
    try:
        write_parquet(rows, data, schema)
        write_text(card if isinstance(card, str) else card(), folder / HF_CARD_FILE)
    except BaseException:
        for created in made:
            _remove_if_empty(created)
        raise


def _remove_if_empty(folder: Path) -> None:
    with suppress(OSError):  # not empty (or already gone): keep it
        folder.rmdir()


def write_rows(
    rows: Iterable[dict[str, Any]],
    path: Path,
    output: str,
    schema: pa.Schema,
    *,
    card: Card | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``rows`` (any iterable, consumed once) as ``output`` at ``path`` after :func:`check_target`;
    ``card`` is required for "hf". An ``OSError`` on the way is an :class:`ExportError` naming ``path`` and the
    fix."""
    if output not in OUTPUTS:
        raise ExportError(f"output={output!r} is not one of {', '.join(OUTPUTS)}; pick one of those")
    check_target(path, output, overwrite)
    with _writable(path):
        if output == "jsonl":
            write_jsonl(rows, path)
        elif output == "parquet":
            write_parquet(rows, path, schema)
        elif card is None:
            raise ExportError("output='hf' needs a dataset card; build one with app.export.card.render_card")
        else:
            write_hf_folder(rows, path, schema, card)
