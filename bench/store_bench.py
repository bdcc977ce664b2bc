"""The store at scale: build a large store in bulk, then time every interactive action through the services.

How the store is built: ``open_store`` creates the schema (all migrations, so the search triggers and indexes
exist), then generated rows go straight into the public tables -- ``executemany`` of plain tuples on SQLite,
``COPY`` on PostgreSQL, in chunks, never the ORM one row at a time -- and the labelling counters are filled
the way migration 0005 fills them (``refresh_progress`` over every sample). Per ``--runs N``: N/5 prompts
(each shared by five runs, for preference candidates), N runs of one sample with 10 steps (N*10 steps), one
sample in ten labelled by three annotators (3*N labels), N/10 preferences.

Actions, each through ``app.services`` as the UI calls them, median of ``--repeat`` tries (ms):
Annotate Next (its five calls: next_sample, label_queue, open_sample, label_history, preference_candidates),
a label click (label_step), the queue (one annotator, anyone, one model, a prompt text every prompt matches), opening a run, History's list and its search
(few hits, many hits), Agreement. Then the ``prm`` export's peak memory (a subprocess calling
``export_dataset``; ``ru_maxrss`` of the child) and this process's resident memory before and after the actions.

    .venv/bin/python bench/store_bench.py --runs 10000 --db sqlite
    .venv/bin/python bench/store_bench.py --runs 100000 --db postgres --url postgresql+psycopg://u:p@host/db
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from app.services import agreement as agreement_service
from app.services import history, labeling
from app.store import Store, open_store
from app.store.progress import refresh_progress

MODELS = ("bench/model-a", "bench/model-b", "bench/model-c")
ANNOTATORS = ("ann1", "ann2", "ann3")
STEPS_PER_SAMPLE = 10
CHUNK = 20_000
WORDS = ("train", "apple", "river", "number", "circle", "garden", "market", "bridge")


def _prompt_text(p: int) -> str:
    word = WORDS[p % len(WORDS)]
    return f"Problem zq{p:07d}: a {word} puzzle. What is {p % 97} times {p % 89} plus {p % 13}? Show your steps."


def _steps(i: int) -> tuple[str, list[tuple[int, str, str, int, int]]]:
    """(thinking text, [(index, source, text, start, end)]) of run ``i``'s sample."""
    sentences = [f"Step {k}: {i % 97} times {k + 2} is {(i % 97) * (k + 2)}." for k in range(STEPS_PER_SAMPLE)]
    thinking = " ".join(sentences)
    rows, start = [], 0
    for k, sentence in enumerate(sentences):
        rows.append((k, "thinking", sentence, start, start + len(sentence)))
        start += len(sentence) + 1
    return thinking, rows


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bulk(store: Store, table: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]]) -> int:
    """Insert ``rows`` into ``table``: COPY on PostgreSQL, executemany on SQLite. Returns the row count."""
    n = 0
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        names = ", ".join(f'"{c}"' for c in columns)
        for chunk in _chunks(rows):
            if store.engine.dialect.name == "postgresql":
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in chunk:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" for _ in columns)
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", chunk)
            n += len(chunk)
        raw.commit()
    finally:
        raw.close()
    return n


RUN_COLUMNS = ["id", "prompt_id", "kind", "model", "format", "settings", "seed", "status", "messages", "seconds",
               "created_at", "created_by"]  # fmt: skip
SAMPLE_COLUMNS = ["id", "run_id", "index", "raw_text", "thinking", "answer", "extracted_answer", "thinking_tokens",
                  "answer_tokens", "stop_reason", "continuations", "seconds", "tokens_per_second", "n_steps"]  # fmt: skip
STEP_COLUMNS = ["id", "sample_id", "index", "source", "text", "start", "end", "active", "created_at"]
LABEL_COLUMNS = ["id", "step_id", "annotator_id", "rating", "comment", "first_error", "created_at"]
PREFERENCE_COLUMNS = ["id", "prompt_id", "chosen_sample_id", "rejected_sample_id", "annotator_id", "reason",
                      "created_at"]  # fmt: skip


def _run_rows(runs: int, n_prompts: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    settings = json.dumps({"temperature": 0.7, "samples": 1, "precision": "bench"})
    for i in range(runs):
        yield (i + 1, i % n_prompts + 1, "playground", MODELS[i % 3], "prompted", settings, i, "done", "[]", 1.0,
               start + timedelta(seconds=i), "local")  # fmt: skip


def _sample_rows(runs: int) -> Iterator[tuple[Any, ...]]:
    for i in range(runs):
        thinking, _ = _steps(i)
        answer = f"The answer is {(i % 97) * 11}."
        yield (i + 1, i + 1, 0, thinking + answer, thinking, answer, str((i % 97) * 11), 120, 8, "end", 0,
               1.0, 30.0, 0)  # fmt: skip


def _step_rows(runs: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    for i in range(runs):
        for k, source, sentence, s, e in _steps(i)[1]:
            yield (i * STEPS_PER_SAMPLE + k + 1, i + 1, k, source, sentence, s, e, True, start)


def _label_rows(runs: int, rng: random.Random, start: datetime) -> Iterator[tuple[Any, ...]]:
    """One sample in ten, every step labelled by each of the three annotators."""
    label_id = 0
    for i in range(0, runs, 10):
        for a in range(len(ANNOTATORS)):
            for k in range(STEPS_PER_SAMPLE):
                label_id += 1
                yield (label_id, i * STEPS_PER_SAMPLE + k + 1, a + 1, rng.choice((1, 1, 1, 0, -1)), "", False, start)


def _preference_rows(runs: int, n_prompts: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    for j, i in enumerate(range(0, max(0, runs - n_prompts), 10)):
        yield (j + 1, i % n_prompts + 1, i + 1, i + n_prompts + 1, 1, "", start)


def _fill_counters_and_analyze(store: Store) -> None:
    """The labelling counters as migration 0005 fills them, the id sequences (PostgreSQL), fresh statistics."""
    with store.engine.begin() as connection:
        refresh_progress(connection, None)
        if store.engine.dialect.name == "postgresql":
            for table in ("annotators", "prompts", "runs", "samples", "steps", "step_labels", "preferences"):
                connection.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")
                )
            for table in ("runs", "samples", "steps", "step_labels", "sample_progress", "prompts"):
                connection.execute(text(f"ANALYZE {table}"))
    if store.engine.dialect.name == "sqlite":
        with store.engine.connect() as connection:
            connection.execute(text("ANALYZE"))


def build(store: Store, runs: int, seed: int = 0) -> dict[str, float]:
    """Fill an empty store with ``runs`` runs (see the module docstring); seconds per phase."""
    rng = random.Random(seed)
    n_prompts = max(1, runs // 5)
    start = datetime(2026, 1, 1)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    _bulk(store, "annotators", ["id", "name", "created_at"], ((k + 1, n, start) for k, n in enumerate(ANNOTATORS)))
    prompts = ((p + 1, f"{p:064d}", _prompt_text(p), start) for p in range(n_prompts))
    _bulk(store, "prompts", ["id", "text_hash", "text", "created_at"], prompts)
    _bulk(store, "runs", RUN_COLUMNS, _run_rows(runs, n_prompts, start))
    _bulk(store, "samples", SAMPLE_COLUMNS, _sample_rows(runs))
    timings["runs, samples"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    _bulk(store, "steps", STEP_COLUMNS, _step_rows(runs, start))
    timings["steps"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    _bulk(store, "step_labels", LABEL_COLUMNS, _label_rows(runs, rng, start))
    _bulk(store, "preferences", PREFERENCE_COLUMNS, _preference_rows(runs, n_prompts, start))
    timings["labels, preferences"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    _fill_counters_and_analyze(store)
    timings["counters, analyze"] = time.perf_counter() - t3
    return timings


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        action()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def actions(store: Store, runs: int) -> dict[str, Callable[[], object]]:
    """The interactive actions, named as the table prints them."""
    rare = _prompt_text(max(0, runs // 5 - 3)).split()[1].rstrip(":")  # a prompt's own tag: five runs
    run_id = runs // 2 + 1
    queue = labeling.label_queue(store, "ann1", limit=1).items
    sample_id = queue[0].sample_id if queue else 1
    clicks = iter(range(10**9))

    def annotate_next() -> None:
        next_id = labeling.next_sample(store, "ann1", skip=sample_id)
        labeling.label_queue(store, "ann1")
        view = labeling.open_sample(store, next_id or sample_id, "ann1")
        labeling.label_history(store, view.steps[0].step_id)
        labeling.preference_candidates(store, view.sample_id)

    def label_click() -> None:
        view = labeling.open_sample(store, sample_id, "ann1") if next(clicks) == 0 else None
        steps = view.steps if view else store.steps_for_sample(sample_id)
        labeling.label_step(store, sample_id, steps[0].step_id, "ann1", 1)

    return {
        "Annotate Next (5 calls)": annotate_next,
        "label click": label_click,
        "queue (one annotator)": lambda: labeling.label_queue(store, "ann1"),
        "queue (anyone)": lambda: labeling.label_queue(store, None),
        "queue, one model": lambda: labeling.label_queue(store, "ann1", model=MODELS[1]),
        "queue, prompt text filter": lambda: labeling.label_queue(store, "ann1", prompt_search="puzzle"),
        "open a run": lambda: history.get_run(store, run_id),
        "History list": lambda: history.list_runs(store),
        "History search, few hits": lambda: history.list_runs(store, search=rare),
        "History search, many hits": lambda: history.list_runs(store, search="puzzle"),
        "Agreement": lambda: agreement_service.agreement(store),
    }


def export_peak_mb(url: str) -> float:
    """Peak resident memory (MB) of a subprocess exporting ``prm`` rows from ``url``."""
    with tempfile.TemporaryDirectory() as folder:
        code = (
            "import sys; from app.store import open_store; from app.services.exporting import export_dataset; "
            "export_dataset(open_store(sys.argv[1]), 'prm', sys.argv[2])"
        )
        subprocess.run([sys.executable, "-c", code, url, str(Path(folder) / "prm.jsonl")], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _wipe_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--url", help="the database (PostgreSQL: wiped first; SQLite: default a temporary file)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="keep a store that already has --runs runs")
    parser.add_argument("--no-export", action="store_true", help="skip the export memory measurement")
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="store_bench_")
    url = args.url or f"sqlite:///{folder}/bench.db"
    if args.db == "postgres" and not args.url:
        parser.error("--db postgres needs --url postgresql+psycopg://... (a database the bench may wipe)")
    store = open_store(url)
    if not (args.reuse and store.count_runs() == args.runs):
        store.close()
        if args.db == "postgres":
            _wipe_postgres(url)
        elif Path(url.removeprefix("sqlite:///")).exists() and args.url:
            Path(url.removeprefix("sqlite:///")).unlink()
        store = open_store(url)
        t0 = time.perf_counter()
        phases = build(store, args.runs)
        print(f"built {args.runs} runs on {args.db} in {time.perf_counter() - t0:.1f} s: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()), flush=True)  # fmt: skip
    idle = _rss_mb()
    print(f"\n{args.db}, {args.runs} runs ({args.runs * STEPS_PER_SAMPLE} steps, {3 * (args.runs // 10) * 10} labels)")
    print(f"{'action':32} {'ms (median of ' + str(args.repeat) + ')':>20}")
    for name, action in actions(store, args.runs).items():
        print(f"{name:32} {_median_ms(action, args.repeat):>20.1f}", flush=True)
    print(f"{'process RSS idle / after (MB)':32} {f'{idle:.0f} / {_rss_mb():.0f}':>20}")
    if not args.no_export:
        print(f"{'export prm peak RSS (MB)':32} {export_peak_mb(url):>20.0f}")
    store.close()


if __name__ == "__main__":
    main()
