"""``Sessions``: the engine, one short read or write session per store method, and driver errors in words.

Every repository (``runs.py``, ``labels.py``, ...) holds the one ``Sessions`` of its ``Store`` and opens a
session per method, so one ``Store`` can be shared by the threads of a web server; nothing here is a
module-level global.

Write sessions begin with ``BEGIN IMMEDIATE`` on SQLite (see ``db.py``): a writer takes the write lock before
it reads, so two writers queue on ``busy_timeout`` instead of failing with "database is locked" when one
upgrades a stale read snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import false, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.store.errors import DatabaseBusy, StoreError
from app.store.models import Annotator

#: Execution option that makes the SQLite ``begin`` hook emit ``BEGIN IMMEDIATE``; ignored elsewhere.
WRITE_TRANSACTION = "tracelab_write"

#: SQLite's words for "another connection holds the lock" (its errors carry no code the driver exposes).
SQLITE_BUSY_WORDS = ("database is locked", "database is busy", "database table is locked")
#: PostgreSQL SQLSTATEs worth retrying: lock_not_available (``lock_timeout``, ``NOWAIT``), serialization_failure,
#: deadlock_detected, query_canceled (``statement_timeout``, which a statement waiting on a lock runs into).
POSTGRES_BUSY_STATES = frozenset({"55P03", "40001", "40P01", "57014"})


def is_busy(exc: BaseException) -> bool:
    """The database refused because another writer holds its lock: SQLite "database is locked"/"busy", or a
    PostgreSQL lock timeout, serialization failure, deadlock or statement timeout (by SQLSTATE). Worth retrying
    later, unlike a read-only file or a full disk. ``exc`` is a SQLAlchemy error or the driver's own."""
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)  # psycopg 3 / 2
    if state in POSTGRES_BUSY_STATES:
        return True
    text = str(driver_error).lower()
    return any(words in text for words in SQLITE_BUSY_WORDS)


class Sessions:
    """The engine and its session factories; see the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read_sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            engine.execution_options(**{WRITE_TRANSACTION: True}), expire_on_commit=False
        )

    @property
    def url(self) -> str:
        """The database URL with any password hidden, for messages and the UI."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session with one consistent snapshot for a read."""
        with self._wrap_errors("read"), self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._wrap_errors("write to"), self._write_sessions.begin() as session:
            yield session

    @contextmanager
    def _wrap_errors(self, verb: str) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            if is_busy(exc):
                raise DatabaseBusy(
                    f"could not {verb} the database {self.url}: it is busy (locked by another writer). "
                    "Try again in a moment"
                ) from exc
            if isinstance(exc, OperationalError):
                raise StoreError(
                    f"could not {verb} the database {self.url}: {exc.orig}. If it persists, "
                    "check that the file or server is reachable and writable"
                ) from exc
            # a constraint, a trigger, a driver refusal: one line, not SQLAlchemy's SQL dump
            raise StoreError(f"could not {verb} the database {self.url}: {exc.orig}") from exc
        except OverflowError as exc:  # an id or number wider than the database's 64-bit integers
            raise StoreError(f"a number is out of range for the database ({exc}); use a smaller value") from exc

    def check_writable(self) -> None:
        """Raise ``StoreError`` with the fix when the database can be read but not written (a read-only file,
        folder or mount, ``mode=ro``, a read-only database user): checked at start-up, before anyone works."""
        try:
            with self.write() as session:  # an UPDATE that matches nothing still needs write access
                session.execute(update(Annotator).where(false()).values(name=Annotator.name))
        except DatabaseBusy:
            return  # writable, just busy right now
        except StoreError as exc:
            raise StoreError(
                f"the database {self.url} can't be written ({exc.__cause__ and getattr(exc.__cause__, 'orig', '')}): "
                "make the file and its folder writable, or point --db / TRACELAB_DB at a writable database"
            ) from exc

    def close(self) -> None:
        """Close pooled connections (the file stays as it is; a new ``open_store`` reopens it)."""
        self.engine.dispose()


class Repository:
    """What every repository of the store is: the methods of one aggregate over the ``Sessions`` it is given
    (``repository.Store`` builds one of each over the same ``Sessions``)."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
