"""The command line, run as a user runs it (a subprocess), on the tiny model and real SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(args: list[str], tmp_path: Path, cache_dir: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, TRACELAB_DATA_DIR=str(tmp_path / "data"), TRACELAB_CACHE_DIR=str(cache_dir), **env)
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, env=full_env, timeout=300
    )


@pytest.fixture(scope="module")
def cli_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


def test_generate_text_separates_thinking_and_answer_and_saves(cli_tmp, bundled_dir, cache_dir):
    out = _run(
        ["generate", "What is 2+2?", "--model", "tiny", "--max-thinking-tokens", "12", "--max-answer-tokens", "6"],
        cli_tmp,
        cache_dir,
    )
    assert out.returncode == 0, out.stderr
    assert "--- thinking ---" in out.stdout and "--- answer ---" in out.stdout
    assert "12 thinking" in out.stdout and "budget_cut" in out.stdout
    assert (cli_tmp / "data" / "tracelab.db").is_file()


def test_generate_json_with_samples_and_no_save(tmp_path, bundled_dir, cache_dir):
    out = _run(
        [
            "generate",
            "hi",
            "--model",
            "tiny",
            "--samples",
            "3",
            "--seed",
            "2",
            "--max-thinking-tokens",
            "8",
            "--max-answer-tokens",
            "4",
            "--json",
            "--no-save",
        ],
        tmp_path,
        cache_dir,
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["run_id"] is None and len(payload["samples"]) == 3
    assert payload["settings"]["temperature"] == 0.7  # k > 1 without a temperature samples, not greedy copies
    assert not (tmp_path / "data").exists()  # --no-save touches no database
    for sample in payload["samples"]:  # per-token confidence, one entry per generated token
        n = len(sample["token_text"])
        assert n > 0 and len(sample["token_entropy"]) == len(sample["token_prob"]) == len(sample["token_top"]) == n
        assert all(p is None or 0 < p <= 1 for p in sample["token_prob"])
        assert "temperature" in sample["token_source"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "hi", "--min-thinking-tokens", "50", "--max-thinking-tokens", "10"], "min_thinking_tokens=50"),
        (["generate", "  "], "prompt is empty"),
        (["generate", "hi", "--model", "/nope"], "No such file or folder: /nope"),
        (["export", "--format", "prm", "--out", "x.parquet", "--since", "last week"], "is not a date"),
    ],
)
def test_bad_input_is_one_line_with_the_fix(args, message, tmp_path, cache_dir):
    out = _run(args, tmp_path, cache_dir)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_bad_environment_value(tmp_path, cache_dir):
    out = _run(["generate", "hi"], tmp_path, cache_dir, TRACELAB_PORT="abc")
    assert out.returncode == 2 and "TRACELAB_PORT='abc'" in out.stderr


def test_export_of_nothing_says_what_to_do_and_writes_nothing(tmp_path, cache_dir):
    target = tmp_path / "prm.parquet"
    out = _run(["export", "--format", "prm", "--out", str(target)], tmp_path, cache_dir)
    assert out.returncode == 2 and "label some steps in the Annotate tab" in out.stderr
    assert not target.exists()


def test_export_writes_what_was_labelled(cli_tmp, bundled_dir, cache_dir):
    from app.store import open_store

    # depends on the run saved by test_generate_text_separates_thinking_and_answer_and_saves
    store = open_store(f"sqlite:///{cli_tmp / 'data' / 'tracelab.db'}")
    run = store.get_run(store.list_runs()[0].run_id)
    steps = run.samples[0].steps
    for step in steps:
        store.add_label(step.step_id, "ann", 1)
    out = _run(["export", "--format", "prm", "--out", str(cli_tmp / "prm.jsonl")], cli_tmp, cache_dir)
    assert out.returncode == 0, out.stderr
    row = json.loads((cli_tmp / "prm.jsonl").read_text().splitlines()[0])
    assert row["labels"] == [True] * len(steps) and len(row["completions"]) == len(steps)
