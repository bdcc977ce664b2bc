"""``is_busy``: which refusals of the database are "busy, try again" (``DatabaseBusy``, retried by the run
recorder) and which are not. SQLite by its messages; PostgreSQL by SQLSTATE, on the real server when
TRACELAB_TEST_POSTGRES_URL is set (lock and statement timeouts, a serialization failure, a deadlock)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from store_support import POSTGRES_URL, fresh_url, make_result

from app.errors import DatabaseBusy
from app.services.recording import RunRecorder
from app.store import StoreError, open_store
from app.store.sessions import is_busy

psycopg_errors = pytest.importorskip("psycopg.errors")
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="set TRACELAB_TEST_POSTGRES_URL to run on PostgreSQL")


@pytest.mark.parametrize(
    "message", ["database is locked", "database is busy", "database table is locked: runs", "Database Is Locked"]
)
def test_sqlite_lock_messages_are_busy(message: str) -> None:
    error = sqlite3.OperationalError(message)
    assert is_busy(error)
    assert is_busy(OperationalError("INSERT ...", {}, error))


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("attempt to write a readonly database"),
        sqlite3.OperationalError("database or disk is full"),
        psycopg_errors.UniqueViolation("duplicate key value violates unique constraint"),
        psycopg_errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
        psycopg_errors.InsufficientPrivilege("permission denied for table runs"),
    ],
)
def test_other_refusals_are_not_busy(error: Exception) -> None:
    assert not is_busy(error)
    assert not is_busy(DBAPIError("INSERT ...", {}, error))


@pytest.mark.parametrize(
    "cls", ["LockNotAvailable", "SerializationFailure", "DeadlockDetected", "QueryCanceled"], ids=str
)
def test_postgres_lock_and_serialization_states_are_busy(cls: str) -> None:
    error = getattr(psycopg_errors, cls)("canceling statement")
    assert is_busy(error)
    assert is_busy(OperationalError("UPDATE ...", {}, error))


# --- on the real PostgreSQL ---------------------------------------------------------------------------------


def _with_options(url: str, options: str) -> str:
    """``url`` whose connections start with ``options`` (e.g. ``-c lock_timeout=200``)."""
    return f"{url}{'&' if '?' in url else '?'}options={options.replace(' ', '%20').replace('=', '%3D')}"


@contextmanager
def _table_locked(url: str, table: str) -> Iterator[None]:
    """Another session holds an exclusive lock on ``table`` for the block."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))  # table: a constant in the test
            yield
    finally:
        engine.dispose()


@needs_postgres
@pytest.mark.parametrize("timeout", ["lock_timeout", "statement_timeout"])
def test_a_postgres_write_that_times_out_on_a_lock_is_busy(timeout: str, tmp_path: Path) -> None:
    url = fresh_url("postgres", tmp_path)
    open_store(url).close()  # migrated before the lock is taken
    store = open_store(_with_options(url, f"-c {timeout}=200"))
    try:
        with _table_locked(url, "annotators"), pytest.raises(DatabaseBusy, match="busy"):
            store.ensure_annotator("alice")
        store.ensure_annotator("alice")  # the lock is gone: the same write goes through
        assert store.list_annotators() == ["alice"]
    finally:
        store.close()


@needs_postgres
def test_a_postgres_write_refused_for_another_reason_is_not_busy(tmp_path: Path) -> None:
    url = fresh_url("postgres", tmp_path)
    open_store(url).close()
    store = open_store(_with_options(url, "-c default_transaction_read_only=on"))
    try:
        with pytest.raises(StoreError) as refused:
            store.ensure_annotator("alice")
        assert not isinstance(refused.value, DatabaseBusy)
    finally:
        store.close()


@needs_postgres
def test_the_recorder_waits_out_a_postgres_lock_and_saves(tmp_path: Path) -> None:
    url = fresh_url("postgres", tmp_path)
    open_store(url).close()
    store = open_store(_with_options(url, "-c lock_timeout=100"))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _table_locked(url, "runs"):
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        ticket = RunRecorder(store, retry_seconds=30.0).finish(make_result(), [], "done")
        assert not ticket.wait(1.0)  # still retrying while the lock is held
        release.set()
        assert ticket.wait(20) and ticket.state == "saved" and ticket.retrying
        assert store.get_run(ticket.run_id or 0).status == "done"
    finally:
        release.set()
        holder.join()
        store.close()


@needs_postgres
def test_real_serialization_failures_and_deadlocks_are_busy(tmp_path: Path) -> None:
    engine = create_engine(fresh_url("postgres", tmp_path))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE counters (id int PRIMARY KEY, n int)"))
            conn.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
        assert is_busy(_serialization_failure(engine))
        assert is_busy(_deadlock(engine))
    finally:
        engine.dispose()


def _serialization_failure(engine) -> DBAPIError:
    """Two repeatable-read transactions update the same row: the later one gets SQLSTATE 40001."""
    with engine.connect() as first, engine.connect() as second:
        first.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        first.execute(text("SELECT n FROM counters WHERE id = 1")).scalar_one()  # takes the snapshot
        with second.begin():
            second.execute(text("UPDATE counters SET n = n + 1 WHERE id = 1"))
        with pytest.raises(DBAPIError) as failed:
            first.execute(text("UPDATE counters SET n = n + 1 WHERE id = 1"))
        first.rollback()
    assert failed.value.orig.sqlstate == "40001"
    return failed.value


def _deadlock(engine) -> DBAPIError:
    """Two transactions lock rows 1 and 2 in opposite orders: PostgreSQL aborts one with SQLSTATE 40P01."""
    errors: list[DBAPIError] = []
    both_locked = threading.Barrier(2)

    def lock_both(conn: Connection, first: int, then: int) -> None:
        try:
            with conn.begin():
                conn.execute(text("SELECT n FROM counters WHERE id = :id FOR UPDATE"), {"id": first})
                both_locked.wait(10)
                conn.execute(text("SELECT n FROM counters WHERE id = :id FOR UPDATE"), {"id": then})
        except DBAPIError as exc:
            errors.append(exc)

    with engine.connect() as one, engine.connect() as two:
        threads = [
            threading.Thread(target=lock_both, args=(one, 1, 2)),
            threading.Thread(target=lock_both, args=(two, 2, 1)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(errors) == 1 and errors[0].orig.sqlstate == "40P01"
    return errors[0]
