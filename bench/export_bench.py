"""Exports at scale: build a large store in bulk, then measure each export's peak memory in its own process.

The store is written straight into the tables through SQLAlchemy Core (``executemany`` in chunks of 5,000 rows
on the store's migrated schema; ids given, no ORM), shaped like the issue-23 drill store: one sample of 8 steps
(7 thinking + 1 answer, ~110 characters each) per run, two runs per prompt, 12.5% of the samples labelled on
every step by three annotators (so 3 x 8 x runs/8 = 3 labels per run, 300,000 at 100,000 runs) with a verdict
each, one preference per 10 runs, automatic labels on 5% of the samples and a branch link on 1% of the runs.
Building 10,000 runs takes a few seconds; 100,000 about half a minute.

Each export then runs in a fresh ``python`` process that opens the store, reads its resident memory (``VmRSS``),
exports, and reports its peak (``VmHWM``) and its resident memory after the export and a ``gc.collect()``: the
growth is what the export itself held, the "after" figure whether the memory came back. Figures go in the
README's Benchmarks ("Exports at scale").

    .venv/bin/python bench/export_bench.py [--runs 10000] [--db /tmp/x.db] [--formats prm,kto] [--outputs jsonl]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import insert

from app.store import open_store
from app.store.models import (
    AUTO_MC,
    Annotator,
    AutoStepLabel,
    Preference,
    Prompt,
    Run,
    RunBranch,
    Sample,
    SampleVerdict,
    Step,
    StepLabel,
)

ANNOTATORS = ("alice", "bob", "carol")
STEPS = 8  # per sample: 7 thinking steps and the answer
CHUNK = 5_000
#: (format, options) of every export measured; each in every output.
EXPORTS: list[tuple[str, dict[str, Any]]] = [
    ("prm", {}),
    ("prm", {"source": "both"}),
    ("preference", {}),
    ("kto", {}),
    ("sft", {}),
    ("prm800k", {}),
]
OUTPUTS = ("jsonl", "parquet", "hf")
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _step_text(run: int, k: int) -> str:
    return (
        f"Step {k} of run {run}: from the previous result we multiply by {k + 2} and subtract {run % 97}, "
        f"which leaves {run * (k + 2) - run % 97}."
    )


def _tables(runs: int) -> Iterator[tuple[type, Iterator[dict[str, Any]]]]:
    """Every table's rows, parents first."""
    yield Annotator, ({"id": i, "name": name, "created_at": START} for i, name in enumerate(ANNOTATORS, 1))
    yield Prompt, (_prompt(p) for p in range(1, (runs + 1) // 2 + 1))
    yield Run, (_run(r) for r in range(1, runs + 1))
    yield Sample, (_sample(r) for r in range(1, runs + 1))
    yield Step, (step for r in range(1, runs + 1) for step in _steps(r))
    labelled = range(8, runs + 1, 8)
    yield StepLabel, (label for r in labelled for label in _step_labels(r))
    yield SampleVerdict, (verdict for r in labelled for verdict in _verdicts(r))
    yield AutoStepLabel, (label for r in range(3, runs + 1, 20) for label in _auto_labels(r))
    yield Preference, (_preference(r) for r in range(1, runs, 10))
    yield RunBranch, (_branch(r) for r in range(50, runs + 1, 100))


def _texts(r: int) -> list[str]:
    """The 7 thinking steps and the answer of run ``r``'s sample."""
    return [_step_text(r, k) for k in range(STEPS - 1)] + [f"The answer is {r * 3}."]


def _when(r: int) -> datetime:
    return START + timedelta(days=1, seconds=r)


def _prompt(p: int) -> dict[str, Any]:
    text = f"Problem {p}: a shop sells {p} apples a day for {p % 13 + 2} days. How many apples does it sell?"
    return {"id": p, "text_hash": hashlib.sha256(text.encode()).hexdigest(), "text": text, "created_at": START}


def _run(r: int) -> dict[str, Any]:
    return {"id": r, "prompt_id": (r + 1) // 2, "kind": "playground", "model": "tiny/model" if r % 4 else "big/model",
            "format": "prompted", "settings": {"temperature": 0.7}, "seed": r, "status": "done", "error": None,
            "gold": str(r * 3), "messages": [], "seconds": 1.0, "created_at": START + timedelta(seconds=r),
            "created_by": "local"}  # fmt: skip


def _sample(r: int) -> dict[str, Any]:
    *thoughts, answer = _texts(r)
    thinking = "\n".join(thoughts)
    return {"id": r, "run_id": r, "index": 0, "raw_text": f"<think>\n{thinking}\n</think>\n\n{answer}",
            "thinking": thinking, "answer": answer, "extracted_answer": str(r * 3), "thinking_tokens": 200,
            "answer_tokens": 6, "stop_reason": "end", "continuations": 0, "seconds": 1.0,
            "time_to_first_token": 0.1, "thinking_seconds": 0.9, "tokens_per_second": 30.0, "error": None}  # fmt: skip


def _steps(r: int) -> Iterator[dict[str, Any]]:
    offset = 0
    for k, text in enumerate(_texts(r)):
        source = "answer" if k == STEPS - 1 else "thinking"
        start = 0 if source == "answer" else offset
        yield {"id": (r - 1) * STEPS + k + 1, "sample_id": r, "index": k, "source": source, "text": text,
               "start": start, "end": start + len(text), "active": True, "created_at": START}  # fmt: skip
        offset += len(text) + 1


def _step_labels(r: int) -> Iterator[dict[str, Any]]:
    for a in range(1, len(ANNOTATORS) + 1):
        for k in range(STEPS):
            rating = -1 if (r + a + k) % 23 == 0 else 0 if (r + k) % 11 == 0 else 1
            yield {"id": ((r // 8 - 1) * len(ANNOTATORS) + a - 1) * STEPS + k + 1, "step_id": (r - 1) * STEPS + k + 1,
                   "annotator_id": a, "rating": rating, "comment": "" if rating >= 0 else "wrong here",
                   "first_error": False, "created_at": _when(r)}  # fmt: skip


def _verdicts(r: int) -> Iterator[dict[str, Any]]:
    for a in range(1, len(ANNOTATORS) + 1):
        yield {"id": (r // 8 - 1) * len(ANNOTATORS) + a, "sample_id": r, "annotator_id": a,
               "correct": (r + a) % 5 != 0, "created_at": _when(r)}  # fmt: skip


def _auto_labels(r: int) -> Iterator[dict[str, Any]]:
    for k in range(STEPS):
        soft = ((r + k) % 5) / 4
        yield {"id": (r // 20) * STEPS + k + 1, "step_id": (r - 1) * STEPS + k + 1, "source": AUTO_MC, "soft": soft,
               "hard": soft > 0, "rollouts": 4, "target": str(r * 3), "target_kind": "gold", "settings": {},
               "created_at": _when(r)}  # fmt: skip


def _preference(r: int) -> dict[str, Any]:
    return {"id": r // 10 + 1, "prompt_id": (r + 1) // 2, "chosen_sample_id": r, "rejected_sample_id": r + 1,
            "annotator_id": 1 + r % 3, "reason": "", "created_at": _when(r)}  # fmt: skip


def _branch(r: int) -> dict[str, Any]:
    return {"run_id": r, "parent_run_id": r - 1, "parent_sample_index": 0, "parent_step_index": 2,
            "kind": "resample", "created_at": _when(r)}  # fmt: skip


def build_store(path: Path, runs: int) -> str:
    """Write a migrated SQLite store of ``runs`` runs at ``path`` (see the module docstring); return its URL."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    try:
        with store.engine.begin() as conn:
            for model, rows in _tables(runs):
                chunk: list[dict[str, Any]] = []
                for row in rows:
                    chunk.append(row)
                    if len(chunk) >= CHUNK:
                        conn.execute(insert(model), chunk)
                        chunk = []
                if chunk:
                    conn.execute(insert(model), chunk)
    finally:
        store.close()
    return url


def _status(field: str) -> int:
    """A ``/proc/self/status`` figure in bytes (``VmRSS`` now, ``VmHWM`` the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(url: str, fmt: str, output: str, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Run one export in this process and report its memory: start, peak, after (bytes), seconds, rows."""
    from app.services.exporting import export_dataset

    store = open_store(url)
    store.list_annotators()  # the connection and the mapper set-up are paid before the baseline,
    pa.array([""])  # and Arrow's one-time start-up (~50 MB resident on first use, whatever the size)
    gc.collect()
    before = _status("VmRSS")
    started = time.perf_counter()
    summary = export_dataset(store, fmt, out, output=output, **options)
    seconds = time.perf_counter() - started
    gc.collect()
    return {"before": before, "peak": _status("VmHWM"), "after": _status("VmRSS"), "seconds": seconds,
            "rows": summary.rows}  # fmt: skip


def measure_in_child(url: str, fmt: str, output: str, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (peak memory is per process)."""
    args = [sys.executable, __file__, "--measure", json.dumps([url, fmt, output, str(out), options])]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"export {fmt} {output} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--db", type=Path, help="reuse (or build) this SQLite file; default: a temp file")
    parser.add_argument("--formats", default=",".join(dict.fromkeys(f for f, _ in EXPORTS)))
    parser.add_argument("--outputs", default=",".join(OUTPUTS))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        url, fmt, output, out, options = json.loads(args.measure)
        print(json.dumps(measure(url, fmt, output, Path(out), options)))
        return
    work = Path(tempfile.mkdtemp(prefix="export-bench-"))
    db = args.db or work / "store.db"
    if not db.exists():
        started = time.perf_counter()
        build_store(db, args.runs)
        seconds, size = time.perf_counter() - started, db.stat().st_size / 2**20
        print(f"built {db} ({args.runs:,} runs, {size:.0f} MB) in {seconds:.1f} s")
    url, mib = f"sqlite:///{db}", 2**20
    print(f"{'export':<22} {'output':<8} {'rows':>8} {'file MB':>8} {'start MB':>9} {'peak MB':>8} {'growth MB':>10} "
          f"{'after MB':>9} {'s':>6}")  # fmt: skip
    for fmt, options in EXPORTS:
        if fmt not in args.formats.split(","):
            continue
        for output in args.outputs.split(","):
            name = fmt + "".join(f" {k}={v}" for k, v in options.items())
            out = work / f"{fmt}-{len(options)}-{output}{'.' + output if output != 'hf' else ''}"
            m = measure_in_child(url, fmt, output, out, options)
            print(f"{name:<22} {output:<8} {m['rows']:>8} {_size(out) / mib:>8.1f} {m['before'] / mib:>9.0f} "
                  f"{m['peak'] / mib:>8.0f} {(m['peak'] - m['before']) / mib:>10.0f} {m['after'] / mib:>9.0f} "
                  f"{m['seconds']:>6.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
