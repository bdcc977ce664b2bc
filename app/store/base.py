"""The part of ``Store`` every concern shares: the engine, read and write sessions, and get-or-create helpers.

Each concern (runs, steps, labels, queue, preferences, exports) is a mixin over ``StoreBase`` in its own
module; ``repository.Store`` puts them together. Methods open one short session each, so one ``Store`` can be
shared by the threads of a web server; nothing here is a module-level global.

Write sessions begin with ``BEGIN IMMEDIATE`` on SQLite (see ``db.py``): a writer takes the write lock before
it reads, so two writers queue on ``busy_timeout`` instead of failing with "database is locked" when one
upgrades a stale read snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import false, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import Self

from app.store.errors import DatabaseBusy, StoreError
from app.store.models import ANNOTATOR_NAME_MAX, Annotator, Prompt

#: Execution option that makes the SQLite ``begin`` hook emit ``BEGIN IMMEDIATE``; ignored elsewhere.
WRITE_TRANSACTION = "tracelab_write"


def is_busy(exc: BaseException) -> bool:
    """The database refused because another writer holds its lock (SQLite "database is locked"/"busy",
    Postgres lock timeouts): worth retrying later, unlike a read-only file or a full disk."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(word in text for word in ("database is locked", "database is busy", "database table is locked"))


def check_annotator_name(name: str) -> str:
    """Return the name stripped, or raise ``StoreError`` saying what is wrong with it."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise StoreError("annotator name is empty; type your name (e.g. 'alice') before labelling")
    if len(cleaned) > ANNOTATOR_NAME_MAX:
        raise StoreError(
            f"annotator name {cleaned[:20]!r}... is {len(cleaned)} characters; use at most {ANNOTATOR_NAME_MAX}"
        )
    if any(not ch.isprintable() for ch in cleaned):
        raise StoreError(f"annotator name {cleaned!r} contains control characters; use letters, digits and spaces")
    return cleaned


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StoreBase:
    """Holds the engine and the session factories; see the module docstring."""

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

    def close(self) -> None:
        """Close pooled connections (the file stays as it is; a new ``open_store`` reopens it)."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A session with one consistent snapshot for a read."""
        with self._wrap_errors("read"), self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with self._wrap_errors("write to"), self._write_sessions.begin() as session:
            yield session

    @contextmanager
    def _wrap_errors(self, verb: str) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            if is_busy(exc):
                raise DatabaseBusy(
                    f"could not {verb} the database {self.url}: it is busy (locked by another writer). "
                    "Try again in a moment"
                ) from exc
            raise StoreError(
                f"could not {verb} the database {self.url}: {exc.orig}. If it persists, "
                "check that the file or server is reachable and writable"
            ) from exc
        except DBAPIError as exc:  # a constraint, a trigger, a driver refusal: one line, not SQLAlchemy's SQL dump
            raise StoreError(f"could not {verb} the database {self.url}: {exc.orig}") from exc
        except OverflowError as exc:  # an id or number wider than the database's 64-bit integers
            raise StoreError(f"a number is out of range for the database ({exc}); use a smaller value") from exc

    def check_writable(self) -> None:
        """Raise ``StoreError`` with the fix when the database can be read but not written (a read-only file,
        folder or mount, ``mode=ro``, a read-only database user): checked at start-up, before anyone works."""
        try:
            with self._write() as session:  # an UPDATE that matches nothing still needs write access
                session.execute(update(Annotator).where(false()).values(name=Annotator.name))
        except DatabaseBusy:
            return  # writable, just busy right now
        except StoreError as exc:
            raise StoreError(
                f"the database {self.url} can't be written ({exc.__cause__ and getattr(exc.__cause__, 'orig', '')}): "
                "make the file and its folder writable, or point --db / TRACELAB_DB at a writable database"
            ) from exc

    # --- get-or-create helpers, used inside a write session ---------------------------------------------

    def _annotator_id(self, session: Session, name: str) -> int:
        name = check_annotator_name(name)
        found = session.scalar(select(Annotator.id).where(Annotator.name == name))
        if found is not None:
            return found
        try:
            with session.begin_nested():  # a concurrent writer may add the same name first (Postgres)
                row = Annotator(name=name)
                session.add(row)
            return row.id
        except IntegrityError:
            return session.scalars(select(Annotator.id).where(Annotator.name == name)).one()

    def _prompt_id(self, session: Session, text: str) -> int:
        digest = text_hash(text)
        found = session.scalar(select(Prompt.id).where(Prompt.text_hash == digest))
        if found is not None:
            return found
        try:
            with session.begin_nested():
                row = Prompt(text=text, text_hash=digest)
                session.add(row)
            return row.id
        except IntegrityError:
            return session.scalars(select(Prompt.id).where(Prompt.text_hash == digest)).one()

    @staticmethod
    def _find_annotator_id(session: Session, name: str) -> int | None:
        """The id of an existing annotator, or None (reads never create annotators)."""
        return session.scalar(select(Annotator.id).where(Annotator.name == name.strip()))
