"""``bench/store_bench.py`` works end to end at a small size (CI's check that it runs; no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACTIONS = [
    "Annotate Next (5 calls)", "label click", "queue (one annotator)", "queue (anyone)", "queue, one model",
    "queue, prompt text filter", "open a run", "History list",
    "History search, few hits", "History search, many hits", "Agreement", "process RSS idle / after (MB)",
    "export prm peak RSS (MB)",
]  # fmt: skip


def test_store_bench_builds_a_small_store_and_prints_every_action(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store_bench.py"), "--runs", "200", "--db", "sqlite", "--url", url,
         "--repeat", "1"],  # fmt: skip
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "built 200 runs on sqlite" in done.stdout
    printed = {line[:32].strip() for line in done.stdout.splitlines()}
    assert [a for a in ACTIONS if a not in printed] == []
