"""Opening a database: the engine, SQLite's connection settings, and bringing the schema to the latest revision.

``open_store(url)`` is the one entry point; it accepts any SQLAlchemy URL (SQLite by default, Postgres for a
team). For SQLite every connection gets WAL (readers never block the writer), a 10 s ``busy_timeout`` (writers
queue instead of failing) and foreign keys ON (deletes cascade). SQLAlchemy, not the ``sqlite3`` module, emits
BEGIN, so transactions cover reads too and write transactions can start with ``BEGIN IMMEDIATE``.

The schema belongs to the Alembic migrations in ``migrations/``; they run programmatically on every open,
which is a no-op when the database is already at head. Nothing here configures logging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from app.store.errors import StoreError
from app.store.repository import Store
from app.store.sessions import WRITE_TRANSACTION

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 10_000

_URL_HINT = "use e.g. sqlite:///tracelab.db (a file) or postgresql+psycopg://user:password@host/dbname"


def _sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url.query)


def _install_sqlite_hooks(engine: Engine, *, memory: bool, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 must not emit BEGIN itself; _begin below does
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: a crash loses no committed data
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_TRANSACTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | URL, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Engine:
    """An engine for ``url``; for a SQLite file, creates its folder and installs the connection settings above.

    Raises ``StoreError`` when the URL is malformed, its driver is missing, or the folder can't be created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"cannot open the database {str(url)!r}: it is not a database URL; {_URL_HINT}") from exc
    shown = parsed.render_as_string(hide_password=True)
    kwargs: dict[str, Any] = {}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite and _sqlite_memory(parsed):
        # One shared connection, or every connection would see its own empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    elif is_sqlite and parsed.database and not parsed.database.startswith("file:"):
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot open the database {shown}: cannot create its folder {folder} ({exc.strerror}); "
                "choose a writable path with --db / TRACELAB_DB"
            ) from exc
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"cannot open the database {shown}: the driver for {parsed.drivername!r} is not installed ({exc}); "
            "install it (e.g. pip install 'psycopg[binary]' for postgresql+psycopg) or use a sqlite:/// URL"
        ) from exc
    if is_sqlite:
        _install_sqlite_hooks(engine, memory=_sqlite_memory(parsed), busy_timeout_ms=busy_timeout_ms)
    return engine


def alembic_config(url: str | URL, connection: Connection | None = None) -> Config:
    """An Alembic config built in code (no alembic.ini needed); ``connection``, if given, is the one migrated."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # ConfigParser interpolation
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` in one write transaction (a no-op when it is already there).

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``, so two processes opening a new file at once
    migrate it one after the other instead of racing.
    """
    with engine.execution_options(**{WRITE_TRANSACTION: True}).begin() as connection:
        command.upgrade(alembic_config(engine.url, connection), revision)


def open_store(url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Store:
    """Open (creating if needed) the database at ``url``, migrate it to the latest schema, return a ``Store``.

    ``busy_timeout_ms``: how long a SQLite write waits for another writer's lock before it fails as busy.

    Raises ``StoreError`` naming the URL and the fix when the database can't be opened or migrated.
    """
    engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        upgrade(engine)
    except CommandError as exc:
        engine.dispose()
        raise StoreError(
            f"cannot open the database {shown}: its schema is not one this version of tracelab knows ({exc}); "
            "it was probably written by a newer tracelab: upgrade tracelab, or point --db at another database"
        ) from exc
    except DatabaseError as exc:
        engine.dispose()
        fix = (
            "check that the path is a writable SQLite file (not another kind of file)"
            if engine.dialect.name == "sqlite"
            else "check that the database server is running, the database exists and the credentials are right"
        )
        raise StoreError(f"cannot open the database {shown}: {exc.orig}; {fix}") from exc
    return Store(engine)
