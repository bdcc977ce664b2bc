"""Branch lineage in dataset exports, end to end: the tiny model resamples a stored trace (a real branch run in a
real SQLite file), people label the branch's samples and the parent's, and every export format carries
``branch_of_run``/``branch_of_sample``/``branch_from_step``/``branch_kind`` for the branch rows (null for the
parent's), in JSONL, Parquet and an HF folder whose card describes the columns."""

from __future__ import annotations

import json

import datasets
import pytest

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.export.dataset_formats import DATASET_FORMATS
from app.export.lineage import LINEAGE_COLUMNS
from app.reasoning.steps import segment_trace
from app.services import labeling
from app.services.branching import resample
from app.services.exporting import export_dataset

THINKING = "Let me think about this problem.\nFirst, 3 + 4 = 7.\nThen 7 * 2 = 14.\nHmm, actually the answer is 7."
ANSWER = "Final Answer: 7"


@pytest.fixture
def lineage_store(tiny_runtime):
    """(runtime, parent run id, branch run id): a parent trace and a real 2-rollout branch from after its step 2,
    each sample step-labelled and judged by alice, and a preference branch-sample > parent-sample by bob."""
    rt = tiny_runtime
    sample = SampleResult(0, f"{THINKING}</think>{ANSWER}", THINKING, ANSWER, 40, 5, "end", extracted_answer="7")
    settings = GenerationSettings(max_thinking_tokens=24, max_answer_tokens=8, temperature=0.8)
    parent = rt.db.save_run(
        GenerationResult("tiny", "prompted", settings, [sample], "What is 3 + 4?"), [segment_trace(THINKING, ANSWER)]
    )
    report = resample(rt, parent, 0, 1, 2, seed=3)
    branch = report.run_id
    samples = [*rt.db.get_run(parent).samples, *rt.db.get_run(branch).samples]
    for s in samples:
        for step in s.steps:
            labeling.label_step(rt.db, s.sample_id, step.step_id, "alice", 1)
        labeling.set_verdict(rt.db, s.sample_id, "alice", True)
    labeling.add_preference(rt.db, samples[1].sample_id, samples[0].sample_id, "bob", "branch reads better")
    return rt, parent, branch


def _read(path, output: str) -> list[dict]:
    if output == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    kind = "parquet" if output == "parquet" else None
    ds = datasets.load_dataset(kind, data_files=str(path), split="train") if kind else None
    return (ds or datasets.load_dataset(str(path), split="train")).to_list()


@pytest.mark.parametrize("output", ["jsonl", "parquet", "hf"])
def test_every_format_carries_the_branch_lineage_of_its_rows(lineage_store, tmp_path, output):
    rt, parent, branch = lineage_store
    link = rt.db.branch_of(branch)
    assert (link.parent_run_id, link.parent_sample_index, link.parent_step_index, link.kind) == (
        parent, 0, 1, "resample")  # fmt: skip
    from_branch = {"branch_of_run": parent, "branch_of_sample": 0, "branch_from_step": 1, "branch_kind": "resample"}
    ordinary = dict.fromkeys(LINEAGE_COLUMNS)
    for fmt in DATASET_FORMATS:
        out = tmp_path / {"jsonl": f"{fmt}.jsonl", "parquet": f"{fmt}.parquet", "hf": fmt}[output]
        export_dataset(rt.db, fmt, out, output=output)
        rows = _read(out, output)
        if fmt == "preference":
            (row,) = rows
            assert {f"chosen_{k}": v for k, v in from_branch.items()}.items() <= row.items()
            assert {f"rejected_{k}": v for k, v in ordinary.items()}.items() <= row.items()
            continue
        lineages = [{k: row[k] for k in LINEAGE_COLUMNS} for row in rows]
        assert sorted(lineages, key=str) == sorted([ordinary, from_branch, from_branch], key=str), fmt  # 1 + 2 samples
        if output == "hf":
            card = (out / "README.md").read_text(encoding="utf-8")
            assert "## Branch lineage columns" in card and "`branch_from_step`" in card
            assert "2 of 3 rows come from branch runs" in card


def test_auto_and_soft_prm_rows_carry_lineage_too(lineage_store, tmp_path):
    rt, parent, branch = lineage_store
    export_dataset(rt.db, "prm", tmp_path / "soft.jsonl", soft=True)
    rows = _read(tmp_path / "soft.jsonl", "jsonl")
    assert sorted(row["branch_of_run"] is not None for row in rows) == [False, True, True]
    assert {row["branch_kind"] for row in rows} == {None, "resample"}
