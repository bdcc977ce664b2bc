"""An export's memory does not grow with the store (issue 23, item 9: ``prm`` 178 MB -> 742 MB for 10x the rows).

A store of 20,000 runs, 2,500 of their samples labelled on every step by three annotators (7,500 labelled
samples, 60,000 labels, ``bench/export_bench.py``'s bulk builder), exported in a fresh process that reports its
resident memory before the export, its peak, and after it. Bounds are generous, not timings: the streamed
export's growth measured 21-48 MB here whatever the size; building the whole selection in memory, as exports
did before, grew by 129-176 MB on this store (and kept 43-113 MB of it afterwards).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
from export_bench import build_store, measure_in_child

MB = 2**20
#: The export's own peak (bytes over the process's resident size before it): the old code's smallest was 129 MB.
PEAK_GROWTH = 90 * MB
#: What stays resident once the export is done (warm caches only): the old code kept 63-113 MB of these three.
LEFT_AFTER = 45 * MB


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("big") / "store.db", 20_000)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS/VmHWM from /proc (Linux)")
@pytest.mark.parametrize(("fmt", "output"), [("prm", "jsonl"), ("kto", "parquet"), ("prm800k", "hf")])
def test_an_export_streams_in_bounded_memory(big_store, tmp_path, fmt, output):
    out = tmp_path / f"{fmt}.{output}" if output != "hf" else tmp_path / fmt
    m = measure_in_child(big_store, fmt, output, out, {})
    assert m["rows"] == 7_500
    grown, kept = m["peak"] - m["before"], m["after"] - m["before"]
    assert grown < PEAK_GROWTH, f"{fmt} {output}: the export grew by {grown / MB:.0f} MB"
    assert kept < LEFT_AFTER, f"{fmt} {output}: {kept / MB:.0f} MB still held after the export"
    if output == "hf":  # a file of many row groups is one dataset to its reader
        ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
        assert ds.num_rows == 7_500 and ds[7_499]["annotator"] == "carol"
