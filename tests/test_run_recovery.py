"""Runs a dead process left ``running`` are recovered by any start, judged by their heartbeat (issue 23 item 7).

- the store marks ``interrupted`` only the ``running`` runs whose heartbeat is older than the staleness it is
  given (a row with no heartbeat: created longer ago), never a finished or freshly beating one;
- a recorder refreshes its run's heartbeat while no new text arrives, and stops once dropped unfinished;
- live runs in two real other processes (their recorders beating every second) survive a server start and a
  CLI ``generate`` long after their own start; once one is killed with kill -9 a server start recovers its run
  and leaves the other alone; once the other is killed, the next CLI command (``export``) recovers it;
- a serving process sweeps every stale interval, so a run killed while it serves needs no restart;
- a bad ``TRACELAB_HEARTBEAT_SECONDS`` is refused in one line.

The interval is shortened through ``TRACELAB_HEARTBEAT_SECONDS`` (stale after 6 heartbeats), never by sleeping
for the real 30 s.
"""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import update
from store_support import make_result, save_example
from ui_support import wait_until

from app.cli import main
from app.services.recording import HEARTBEAT_ENV, RunRecorder, heartbeat_seconds, keep_recovering, stale_after
from app.store import Store, open_store
from app.store.models import Run

REPO = Path(__file__).resolve().parent.parent
BEAT = 1.0  # seconds between heartbeats in these tests: stale after 6 s

#: A second process with a live run: its recorder writes the row, then beats until the process is killed.
LIVE_RUN = """
import sys, time
from app.domain import GenerationResult, GenerationSettings
from app.services.recording import RunRecorder
from app.store import open_store

recorder = RunRecorder(open_store(sys.argv[1]))
head = GenerationResult(model="m", format="f", settings=GenerationSettings(), samples=[], prompt="alive elsewhere")
recorder.begin(head)
while recorder.run_id is None:
    time.sleep(0.05)
print(recorder.run_id, flush=True)
time.sleep(600)
"""


def _age(store: Store, run_id: int, **ago: float) -> None:
    """Move the run's heartbeat (and creation) into the past, as a process that stopped that long ago left it."""
    past = datetime.now(timezone.utc) - timedelta(**ago)
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=past, created_at=past))


def _statuses(store: Store) -> dict[int, str]:
    return {r.run_id: r.status for r in store.list_runs()}


def test_only_runs_whose_heartbeat_stopped_are_interrupted(store: Store) -> None:
    head = replace(make_result(), samples=[])
    beating, stopped, silent_old, silent_new = (store.begin_run(head) for _ in range(4))
    done = save_example(store)
    _age(store, stopped, seconds=31)
    _age(store, silent_old, seconds=31)
    _age(store, done, seconds=31)
    with store.engine.begin() as conn:  # rows written before heartbeats existed: judged by their age
        conn.execute(update(Run).where(Run.id.in_([silent_old, silent_new])).values(heartbeat_at=None))
    assert store.interrupt_running_runs(stale_seconds=30) == 2  # was: all four running runs, fresh ones too
    assert _statuses(store) == {
        beating: "running",
        stopped: "interrupted",
        silent_old: "interrupted",
        silent_new: "running",
        done: "done",
    }
    assert store.interrupt_running_runs(stale_seconds=30) == 0


def test_a_heartbeat_keeps_a_run_alive_and_never_revives_a_finished_one(store: Store) -> None:
    result = make_result()
    run_id = store.begin_run(replace(result, samples=[]))
    _age(store, run_id, seconds=60)
    assert store.runs.heartbeat_run(run_id)
    assert store.interrupt_running_runs(stale_seconds=30) == 0
    store.finish_run(run_id, result, [[] for _ in result.samples])
    assert not store.runs.heartbeat_run(run_id)  # a finished run has nothing left to keep alive
    assert store.get_run(run_id).status == "done"


def test_a_serving_process_keeps_recovering_runs_others_leave_behind(store: Store, monkeypatch) -> None:
    """A CLI run killed while a server is up: the server's sweep marks it, no restart needed."""
    monkeypatch.setenv(HEARTBEAT_ENV, "0.1")  # a sweep every 0.6 s
    stop = threading.Event()
    sweeper = keep_recovering(store, stop)
    try:
        dead = store.begin_run(replace(make_result(), samples=[]))
        _age(store, dead, seconds=5)  # its process died 5 s ago
        wait_until(lambda: _statuses(store)[dead] == "interrupted", timeout=60, what="the sweep")
    finally:
        stop.set()
        sweeper.join(timeout=30)
    assert not sweeper.is_alive()


def _heartbeat(db: Path, run_id: int) -> datetime | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT heartbeat_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    return datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc) if row and row[0] else None


def _created(db: Path, run_id: int) -> datetime:
    with sqlite3.connect(db) as conn:
        (created,) = conn.execute("SELECT created_at FROM runs WHERE id = ?", (run_id,)).fetchone()
    return datetime.fromisoformat(created).replace(tzinfo=timezone.utc)


def test_a_recorder_beats_while_no_text_arrives_and_stops_once_dropped(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(HEARTBEAT_ENV, str(BEAT))
    db = tmp_path / "beat.db"
    store = open_store(f"sqlite:///{db}")
    recorder = RunRecorder(store)
    recorder.begin(replace(make_result(), samples=[]))
    run_id = wait_until(partial(getattr, recorder, "run_id"), timeout=30, what="the run's row")
    began = _heartbeat(db, run_id)
    assert began is not None
    # no checkpoint is offered: only the writer's own heartbeat can move heartbeat_at (was: it never moved)
    wait_until(lambda: _heartbeat(db, run_id) > began + timedelta(seconds=BEAT), timeout=30, what="a heartbeat")
    thread = recorder.thread
    del recorder  # the generation was abandoned without finish()
    gc.collect()
    thread.join(timeout=30)
    assert not thread.is_alive()  # no longer beating: the next start will recover the run


def _runs(db: Path) -> dict[int, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, lifecycle FROM runs ORDER BY id").fetchall())


def _kill(proc: subprocess.Popen) -> datetime:
    """kill -9; returns when it died (its heartbeat stopped at the latest then)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return datetime.now(timezone.utc)


def _stale_since(moment: datetime) -> None:
    wait_until(lambda: datetime.now(timezone.utc) > moment + timedelta(seconds=stale_after()), timeout=60,
               what="a heartbeat to go stale")  # fmt: skip


def test_live_runs_elsewhere_survive_every_start_and_dead_ones_are_recovered(tmp_path, monkeypatch):
    monkeypatch.setenv(HEARTBEAT_ENV, str(BEAT))
    db = tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    open_store(url).close()
    env = {**os.environ, "PYTHONPATH": str(REPO), HEARTBEAT_ENV: str(BEAT)}
    first, second = (
        subprocess.Popen([sys.executable, "-c", LIVE_RUN, url], env=env, stdout=subprocess.PIPE) for _ in "12"
    )
    try:
        one, two = (int(proc.stdout.readline()) for proc in (first, second) if proc.stdout)  # their run ids
        # Long enough that only heartbeats written since their start keep them fresh.
        window = timedelta(seconds=stale_after() + 2 * BEAT)
        fresh = [lambda r=r: _heartbeat(db, r) > _created(db, r) + window for r in (one, two)]
        wait_until(lambda: all(check() for check in fresh), timeout=60, what="both runs' heartbeats")

        from app.ui.server import start_up  # a server start on the same database

        start_up(_settings(tmp_path, url))
        code = main(["generate", "q", "--model", "tiny", "--db", url, "--no-think", "--max-answer-tokens", "2"])
        assert code == 0
        assert (_runs(db)[one], _runs(db)[two]) == ("running", "running")  # was: both interrupted, though alive

        _stale_since(_kill(first))  # one process dies; a server start recovers its run, not the live one
        start_up(_settings(tmp_path, url))
        assert (_runs(db)[one], _runs(db)[two]) == ("interrupted", "running")

        _stale_since(_kill(second))  # any CLI command that opens the database recovers too
        code = main(["export", "--format", "sft", "--out", str(tmp_path / "x.jsonl"), "--db", url])
        assert code == 2  # nothing to export; the start recovered the dead run all the same
        assert _runs(db)[two] == "interrupted"
    finally:
        _kill(first)
        _kill(second)


def _settings(tmp_path: Path, url: str):
    from app.settings import AppSettings

    return AppSettings.from_env(model="tiny", db=url, data_dir=str(tmp_path))


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "nan", "1e9"])
def test_a_bad_heartbeat_setting_is_refused_in_one_line(raw, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(HEARTBEAT_ENV, raw)
    with pytest.raises(ValueError, match=f"{HEARTBEAT_ENV}=.* is not a number of seconds"):
        heartbeat_seconds()
    code = main(
        ["export", "--format", "sft", "--out", str(tmp_path / "x.jsonl"), "--db", f"sqlite:///{tmp_path / 'h.db'}"]
    )
    err = capsys.readouterr().err
    assert code == 2 and HEARTBEAT_ENV in err and "Traceback" not in err
