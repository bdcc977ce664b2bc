"""Several writers and readers on one database, each with its own Store (as separate app processes would).

Real threads and real processes against a real SQLite file (and Postgres, when configured): nothing may fail
with "database is locked" and no write may be lost.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from store_support import BACKENDS, fresh_url, make_result, new_store, save_example

from app.store import Store, open_store

WRITES = 200


def _label_many(store: Store, annotator: str, step_ids: list[int], barrier: threading.Barrier) -> None:
    barrier.wait()
    for i in range(WRITES):
        store.add_label(step_ids[i % len(step_ids)], annotator, (i % 3) - 1, comment=f"{annotator} {i}")


def _run_threads(*targets: tuple) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"writer threads still running after 60 s (a lock that never cleared?): {hung}"
    return errors


def _expected_current(step_ids: list[int], annotator: str) -> dict[int, str]:
    last = {step_ids[i % len(step_ids)]: i for i in range(WRITES)}
    return {step: f"{annotator} {i}" for step, i in last.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_annotators_label_one_sample_at_once_without_losing_a_write(backend: str, tmp_path: Path) -> None:
    url = fresh_url(backend, tmp_path)
    store = open_store(url)
    sample = store.get_run(save_example(store)).samples[0]
    step_ids = [s.step_id for s in sample.steps]
    barrier = threading.Barrier(2)
    errors = _run_threads(
        (_label_many, open_store(url), "alice", step_ids, barrier),
        (_label_many, open_store(url), "bob", step_ids, barrier),
    )
    assert errors == []
    for annotator in ("alice", "bob"):
        history = [h for step in step_ids for h in store.label_history(step) if h.annotator == annotator]
        assert len(history) == WRITES
        current = store.current_labels(sample.sample_id, annotator)
        assert {step: label.comment for step, label in current.items()} == _expected_current(step_ids, annotator)


WRITER = f"""
import sys, time
from pathlib import Path
from app.store import open_store
url, annotator, go, steps = sys.argv[1], sys.argv[2], Path(sys.argv[3]), [int(s) for s in sys.argv[4].split(",")]
store = open_store(url)
while not go.exists():
    time.sleep(0.005)
for i in range({WRITES}):
    store.add_label(steps[i % len(steps)], annotator, (i % 3) - 1, comment=f"{{annotator}} {{i}}")
"""


def test_two_processes_label_the_same_sample_at_once(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    sample = store.get_run(save_example(store)).samples[0]
    step_ids = [s.step_id for s in sample.steps]
    go = tmp_path / "go"
    url = f"sqlite:///{tmp_path / 'tracelab.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, name, str(go), ",".join(map(str, step_ids))],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alice", "bob")
    ]
    go.touch()
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
    for annotator in ("alice", "bob"):
        current = store.current_labels(sample.sample_id, annotator)
        assert {step: label.comment for step, label in current.items()} == _expected_current(step_ids, annotator)
    assert sum(len(store.label_history(step)) for step in step_ids) == 2 * WRITES


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reader_lists_runs_while_a_writer_saves_them(backend: str, tmp_path: Path) -> None:
    url = fresh_url(backend, tmp_path)
    open_store(url)
    saves = 60
    done = threading.Event()
    seen: list[int] = []

    def write(store: Store) -> None:
        try:
            for i in range(saves):
                save_example(store, make_result(f"problem {i}"))
        finally:
            done.set()

    def read(store: Store) -> None:
        while not done.is_set():
            runs = store.list_runs(limit=1000)
            seen.append(len(runs))
            assert all(r.n_samples == 3 for r in runs)  # a run is never seen half-saved
            store.label_queue(annotator="alice")

    errors = _run_threads((write, open_store(url)), (read, open_store(url)))
    assert errors == []
    assert seen == sorted(seen) and len(seen) > 1
    assert open_store(url).count_runs() == saves
