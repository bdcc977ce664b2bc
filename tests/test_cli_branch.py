"""`branch`, `autolabel` and `export --source auto` as a user runs them (subprocesses, tiny model, real SQLite)."""

from __future__ import annotations

import json

import pytest
from test_cli import _run


@pytest.fixture(scope="module")
def parent(tmp_path_factory, bundled_dir, cache_dir):
    tmp = tmp_path_factory.mktemp("branch-cli")
    out = _run(
        ["generate", "What is 3+4?", "--model", "tiny", "--max-thinking-tokens", "16", "--max-answer-tokens", "6",
         "--json"],
        tmp, cache_dir,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return tmp, json.loads(out.stdout)["run_id"]


def test_branch_json_gives_answer_counts_per_step_then_autolabel_and_export_auto(parent, cache_dir):
    tmp, run_id = parent
    args = ["--model", "tiny", "--max-samples", "8"]
    out = _run(["branch", "--run", str(run_id), "--rollouts", "2", "--steps", "1", "--gold", "7", "--json", *args],
               tmp, cache_dir)  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["run_id"] == run_id and data["sample"] == 1 and data["target_kind"] == "gold"
    [step] = data["steps"]
    assert step["index"] == 1 and sum(step["answers"].values()) == 2
    assert 0.0 <= step["share_gold"] <= 1.0 and "importance" in step and step["text"]

    out = _run(["autolabel", "--run", str(run_id), "--rollouts", "2", "--gold", "7", *args], tmp, cache_dir)
    assert out.returncode == 0, out.stderr
    assert "Stored" in out.stdout and "auto:mc" in out.stdout

    target = tmp / "auto.parquet"
    out = _run(["export", "--format", "prm", "--source", "auto", "--soft", "--out", str(target)], tmp, cache_dir)
    assert out.returncode == 0, out.stderr
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(target), split="train")
    row = ds[0]
    assert len(row["labels"]) == len(row["completions"]) >= 1
    assert all(isinstance(v, float) for v in row["labels"])
    assert row["label_source"] == "auto:mc" and row["annotator"] is None and row["auto_rollouts"] == 2

    out = _run(["export", "--format", "prm", "--out", str(tmp / "human.jsonl")], tmp, cache_dir)
    assert out.returncode == 2 and "No labelled samples" in out.stderr  # auto labels are never a person's


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--run", "999", "--rollouts", "2"], "run 999 does not exist"),
        (["--rollouts", "0"], "rollouts=0 must be at least 1"),
        (["--rollouts", "9"], "--max-samples 9"),
        (["--rollouts", "2", "--steps", "99"], "step 99 does not exist"),
        (["--rollouts", "2", "--sample", "5"], "sample 5 does not exist"),
    ],
    ids=["no-run", "n-zero", "n-over-cap", "step-out-of-range", "no-sample"],
)
def test_bad_branch_input_is_one_clear_line(parent, cache_dir, extra, message):
    tmp, run_id = parent
    args = ["branch", "--model", "tiny", "--max-samples", "8"]
    if "--run" not in extra:
        args += ["--run", str(run_id)]
    out = _run([*args, *extra], tmp, cache_dir)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and "Traceback" not in out.stderr
