"""Opening a database: migrations, SQLite settings, and clear errors for URLs that can't be used."""

from __future__ import annotations

import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from store_support import new_store, save_example

from app.store import StoreError, open_store
from app.store.db import alembic_config
from app.store.models import Base
from app.store.search import is_search_index


def _revision(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() or ""


def test_fresh_database_is_migrated_to_head(tmp_path: Path) -> None:
    new_store(tmp_path)
    assert _revision(tmp_path / "tracelab.db") == _head()


def test_migrations_create_exactly_the_schema_the_models_describe(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": lambda name, *_: not is_search_index(name)}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_opening_twice_is_a_noop_that_keeps_the_data(tmp_path: Path) -> None:
    run_id = save_example(new_store(tmp_path))
    again = new_store(tmp_path)
    assert again.get_run(run_id).prompt == "What is (2 + 2) * 3?"
    assert again.count_runs() == 1
    assert _revision(tmp_path / "tracelab.db") == _head()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a' / 'b' / 'lab.db'}")
    assert store.count_runs() == 0
    assert (tmp_path / "a" / "b" / "lab.db").exists()


def test_in_memory_database_works_across_threads() -> None:
    store = open_store("sqlite://")
    run_id = save_example(store)
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(store.get_run, run_id).result().run_id == run_id


def test_database_made_by_an_older_revision_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    run_id = save_example(open_store(f"sqlite:///{path}"))  # written at today's head
    head = _head()
    # A later revision, as a future release would ship it, alongside the real ones.
    extra = tmp_path / "versions"
    extra.mkdir()
    (extra / "9000_note.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        f"revision = '9000'\ndown_revision = {head!r}\nbranch_labels = None\ndepends_on = None\n"
        "def upgrade():\n    op.add_column('runs', sa.Column('note', sa.Text(), nullable=True))\n"
        # Plain DROP COLUMN, as 0002 explains: a batch rebuild of ``runs`` would cascade into its samples
        # (and, since 0005, trip over the FTS triggers on them).
        "def downgrade():\n    op.drop_column('runs', 'note')\n"
    )
    config = alembic_config(f"sqlite:///{path}")
    real = Path(config.get_main_option("script_location") or "") / "versions"
    config.set_main_option("version_locations", f"{real} {extra}")
    command.upgrade(config, "head")
    assert _revision(path) == "9000"
    with sqlite3.connect(path) as conn:
        assert "note" in {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        assert conn.execute("SELECT count(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[0] == 3
    command.downgrade(config, head)
    assert open_store(f"sqlite:///{path}").get_run(run_id).run_id == run_id


def test_downgrading_revision_0002_keeps_runs_and_samples(tmp_path: Path) -> None:
    """0002 adds columns with plain ALTER TABLE: no table rebuild, whose DROP TABLE would cascade into samples."""
    path = tmp_path / "lab.db"
    run_id = save_example(open_store(f"sqlite:///{path}"))
    command.downgrade(alembic_config(f"sqlite:///{path}"), "0004")  # the revision before 0002
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[0] == 3
        assert "created_by" not in {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    assert open_store(f"sqlite:///{path}").get_run(run_id).run_id == run_id


def test_downgrade_to_nothing_then_reopen_rebuilds_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    new_store(tmp_path, "lab.db")
    command.downgrade(alembic_config(f"sqlite:///{path}"), "base")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'runs'").fetchone()[0] == 0
    assert open_store(f"sqlite:///{path}").count_runs() == 0


def test_database_from_a_newer_tracelab_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    new_store(tmp_path, "lab.db")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match=r"lab\.db.*newer tracelab"):
        open_store(f"sqlite:///{path}")


@pytest.mark.parametrize(
    ("make_url", "fix"),
    [
        (lambda tmp: "not a url", "sqlite:///tracelab.db"),
        (lambda tmp: "nosuchdb://host/db", "install"),
        (lambda tmp: f"sqlite:///{_file(tmp, 'plain.txt', 'hello')}/lab.db", "writable path"),
        (lambda tmp: f"sqlite:///{_file(tmp, 'fake.db', 'not sqlite at all' * 100)}", "writable SQLite file"),
    ],
    ids=["not-a-url", "unknown-driver", "folder-is-a-file", "not-a-database"],
)
def test_unusable_url_gives_a_store_error_naming_url_and_fix(tmp_path: Path, make_url, fix: str) -> None:
    url = make_url(tmp_path)
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert url in message
    assert fix in message


def _file(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def test_opening_leaves_the_applications_logging_alone(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers), logging.getLogger("app").disabled)
    new_store(tmp_path)
    assert (root.level, list(root.handlers), logging.getLogger("app").disabled) == before
