"""Text search over prompts and answers through an index, not a scan of every row.

History's search box and the labelling queue's prompt filter match a piece of text anywhere in a prompt or an
answer, in any case (a substring, as ``LIKE '%…%'`` would). With three characters or more the match goes
through an index:

- SQLite: FTS5 tables with the ``trigram`` tokenizer (``prompts_fts`` over ``prompts.text``, ``samples_fts``
  over ``samples.answer`` and ``extracted_answer``), kept in step by triggers; a quoted phrase there is a
  case-insensitive substring match.
- PostgreSQL: ``pg_trgm`` GIN indexes on the same columns, which ``ILIKE '%…%'`` uses. Where the extension
  can't be created (no rights), the migration skips those indexes and the search still works, scanning.

Shorter terms (one or two characters) can't use a trigram index and are matched by scanning, as before.
Revision 0005 installs all of this (:func:`install`) and fills it from the rows already there.
"""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.engine import Connection

from app.store.models import Prompt, Run, Sample

log = logging.getLogger(__name__)

#: The shortest term an index can answer (a trigram).
INDEXED_MIN = 3
#: Hits in one FTS table from which History walks the runs by date instead of sorting the hits (:func:`walk_by_date`).
MANY = 1000
_ESCAPE = "/"

_SQLITE_FTS = {  # table -> (content table, columns)
    "prompts_fts": ("prompts", ("text",)),
    "samples_fts": ("samples", ("answer", "extracted_answer")),
}
_POSTGRES_TRIGRAM = {  # index -> (table, column)
    "ix_trgm_prompts_text": ("prompts", "text"),
    "ix_trgm_samples_answer": ("samples", "answer"),
    "ix_trgm_samples_extracted_answer": ("samples", "extracted_answer"),
}


def is_search_index(name: str | None) -> bool:
    """Whether a table or index is one of the search structures here (the models don't describe them)."""
    return bool(name) and (any(str(name).startswith(table) for table in _SQLITE_FTS) or str(name) in _POSTGRES_TRIGRAM)


def _sqlite_statements(table: str, content: str, columns: tuple[str, ...]) -> list[str]:
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    remove = f"INSERT INTO {table}({table}, rowid, {names}) VALUES ('delete', old.id, {old});"
    add = f"INSERT INTO {table}(rowid, {names}) VALUES (new.id, {new});"
    return [
        f"CREATE VIRTUAL TABLE {table} USING fts5({names}, content='{content}', content_rowid='id', "
        "tokenize='trigram')",
        f"CREATE TRIGGER {table}_ai AFTER INSERT ON {content} BEGIN {add} END",
        f"CREATE TRIGGER {table}_ad AFTER DELETE ON {content} BEGIN {remove} END",
        f"CREATE TRIGGER {table}_au AFTER UPDATE OF {names} ON {content} BEGIN {remove} {add} END",
        f"INSERT INTO {table}({table}) VALUES ('rebuild')",
    ]


def install(connection: Connection) -> None:
    """Create the search structures of the connection's database and fill them from the existing rows."""
    if connection.dialect.name == "sqlite":
        for table, (content, columns) in _SQLITE_FTS.items():
            for statement in _sqlite_statements(table, content, columns):
                connection.execute(text(statement))
    elif connection.dialect.name == "postgresql":
        try:
            with connection.begin_nested():
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except Exception as exc:  # noqa: BLE001 - no rights: search keeps working, by scanning
            log.warning("pg_trgm is not available (%s); History search will scan instead of using an index", exc)
            return
        for index, (table, column) in _POSTGRES_TRIGRAM.items():
            connection.execute(text(f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING gin ({column} gin_trgm_ops)"))


def uninstall(connection: Connection) -> None:
    """Drop what :func:`install` created (the extension stays: other databases' objects may use it)."""
    if connection.dialect.name == "sqlite":
        for table in _SQLITE_FTS:
            for suffix in ("ai", "ad", "au"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_{suffix}"))
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    elif connection.dialect.name == "postgresql":
        for index in _POSTGRES_TRIGRAM:
            connection.execute(text(f"DROP INDEX IF EXISTS {index}"))


def _pattern(term: str) -> str:
    escaped = term.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")
    return f"%{escaped}%"


def _phrase(term: str) -> str:
    """An FTS5 phrase: with the trigram tokenizer, a case-insensitive substring match."""
    return '"' + term.replace('"', '""') + '"'


def _fts_ids(table: str, term: str) -> ColumnElement[int]:
    match = text(f"{table} MATCH :{table}_phrase").bindparams(**{f"{table}_phrase": _phrase(term)})
    return select(text("rowid")).select_from(text(table)).where(match).scalar_subquery()


def prompt_matches(term: str, dialect: str) -> ColumnElement[bool]:
    """``Prompt`` rows whose text contains ``term`` in any case."""
    if dialect == "sqlite" and len(term) >= INDEXED_MIN:
        return Prompt.id.in_(_fts_ids("prompts_fts", term))
    if dialect == "postgresql":
        return Prompt.text.ilike(_pattern(term), escape=_ESCAPE)
    return Prompt.text.icontains(term, autoescape=True)


def walk_by_date(connection: Connection, term: str) -> bool:
    """Whether History should walk the runs newest first, checking each against the hits, rather than sort all the
    hits: on SQLite, when the term is in many prompts or answers (then the first page fills at once). SQLite's
    planner can't know how many rows an FTS match returns; PostgreSQL's estimates it from the trigram index."""
    if connection.dialect.name != "sqlite" or len(term) < INDEXED_MIN:
        return False
    for table in _SQLITE_FTS:
        probe = select(func.count()).select_from(
            select(text("rowid"))
            .select_from(text(table))
            .where(text(f"{table} MATCH :phrase").bindparams(phrase=_phrase(term)))
            .limit(MANY)
            .subquery()
        )
        if (connection.scalar(probe) or 0) >= MANY:
            return True
    return False


def run_matches(term: str, dialect: str, *, walk: bool = False) -> ColumnElement[bool]:
    """``Run`` rows whose prompt or one of whose samples' answers contains ``term`` in any case. ``walk``
    (:func:`walk_by_date`): written so no index can answer it, which leaves the planner the date order's index."""
    if dialect == "sqlite" and len(term) >= INDEXED_MIN:
        in_answers = Sample.id.in_(_fts_ids("samples_fts", term))
    elif dialect == "postgresql":
        pattern = _pattern(term)
        in_answers = or_(
            Sample.answer.ilike(pattern, escape=_ESCAPE), Sample.extracted_answer.ilike(pattern, escape=_ESCAPE)
        )
    else:
        in_answers = or_(
            Sample.answer.icontains(term, autoescape=True), Sample.extracted_answer.icontains(term, autoescape=True)
        )
    prompts = select(Prompt.id).where(prompt_matches(term, dialect))
    prompt_id, run_id = (Run.prompt_id + 0, Run.id + 0) if walk else (Run.prompt_id, Run.id)
    return or_(prompt_id.in_(prompts), run_id.in_(select(Sample.run_id).where(in_answers)))
