"""The streamed ``/generate`` result carries the ids of what was saved (issue 23, item 6).

Its last JSON is the run as ``/get_run`` shows it: ``run_id`` and each sample's ``sample_id`` (was: ``sample_id``
null). When a busy database delays the save, the streamed result says ``"save": "saving"`` with a
``pending_save`` key, and ``/await_save`` answers the same JSON with both ids once the save has landed (was:
``run_id`` only).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from gradio_client import Client
from ui_support import running_app

from app.services.runtime import Runtime
from app.settings import AppSettings
from app.store import open_store


def _stored_ids(client: Client, run_id: int) -> list[int]:
    stored = client.predict(run_id, api_name="/get_run")[2]
    return [s["sample_id"] for s in stored["samples"]]


def test_the_streamed_result_has_the_saved_run_and_sample_ids(client):
    run = client.predict(prompt="ids please", max_answer_tokens=4, thinking=False, api_name="/generate")[2]
    assert run["save"] == "saved" and run["run_id"]
    assert [s["sample_id"] for s in run["samples"]] == _stored_ids(client, run["run_id"])  # was: [None]


def _lock(db: Path, seconds: float, locked: threading.Event) -> None:
    """Another process's writer: BEGIN EXCLUSIVE held for ``seconds``."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_a_save_a_busy_database_delayed_gets_its_ids_from_await_save(tiny_loaded, tiny_engine, tmp_path):
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    settings = AppSettings.from_env(model="tiny", db=url, data_dir=str(tmp_path))
    rt = Runtime(settings, tiny_loaded, tiny_engine, open_store(url, busy_timeout_ms=200))
    with running_app(rt) as served:
        client = Client(served, verbose=False)
        locked = threading.Event()
        holder = threading.Thread(target=_lock, args=(tmp_path / "busy.db", 5.0, locked))
        holder.start()
        locked.wait(5)
        run = client.predict(prompt="locked ids", max_answer_tokens=4, thinking=False, api_name="/generate")[2]
        assert run["save"] == "saving" and run["run_id"] is None and run["pending_save"]
        done = client.predict(run, api_name="/await_save")[2]
        holder.join()
        assert done["save"] == "saved" and done["run_id"]
        assert [s["sample_id"] for s in done["samples"]] == _stored_ids(client, done["run_id"])  # was: [None]
