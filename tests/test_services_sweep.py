"""The test-time scaling sweep: problem files, budget lists, the grid saved as runs, reopening, cancelling,
and the CLI's ``--json`` (a real subprocess on the tiny model) matching the reopened report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.domain import GenerationSettings
from app.engine.events import CancelToken
from app.services import inputs, sweep
from app.store.db import open_store
from app.store.errors import NotFound

ROOT = Path(__file__).resolve().parents[1]
FAST = GenerationSettings(effort=None, max_answer_tokens=3, temperature=0.8, seed=5, samples=2)


def _write(tmp_path: Path, lines: list[str], name: str = "problems.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- inputs -----------------------------------------------------------------------------------------


def test_parse_budgets_sorts_and_drops_duplicates():
    assert inputs.parse_budgets("256, 0,64,64") == [0, 64, 256]
    assert inputs.parse_budgets("32") == [32]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no thinking budgets"),
        (" , ", "no thinking budgets"),
        ("0,abc", "'abc' is not a whole number"),
        ("-1", "budget -1 must be between 0"),
        ("1.5", "'1.5' is not a whole number"),
    ],
)
def test_parse_budgets_rejects_bad_lists_clearly(text, message):
    with pytest.raises(ValueError, match=message):
        inputs.parse_budgets(text)


def test_bundled_problems_have_gsm8k_gold_answers():
    problems = inputs.load_problems("bundled", limit=5)
    assert len(problems) == 5
    assert problems[0].gold == "18" and problems[0].question.startswith("Janet")
    assert problems[0].solution.endswith("#### 18")


def test_uploaded_problems_take_gsm8k_style_bare_or_final_answers(tmp_path):
    path = _write(
        tmp_path,
        [
            json.dumps({"question": "Q1?", "answer": "Some work\n#### 1,234"}),
            "",
            json.dumps({"question": "Q2?", "answer": "$7"}),
            json.dumps({"question": "Q3?", "answer": "long text #### 9", "final": 10}),
            json.dumps({"question": "Q4?", "final": "1/2"}),
        ],
    )
    assert [(p.question, p.gold) for p in inputs.load_problems(path)] == [
        ("Q1?", "1234"),
        ("Q2?", "7"),
        ("Q3?", "10"),
        ("Q4?", "1/2"),
    ]
    assert len(inputs.load_problems(str(path), limit=2)) == 2


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "ok", "answer": "1"}', "{not json"], r"problems.jsonl line 2 is not valid JSON"),
        (['{"answer": "1"}'], r"line 1 has no question field"),
        (['{"question": "Q"}'], r"line 1 has no answer field"),
        (['["question", "answer"]'], r"line 1 is an array, not a JSON object"),
        (['{"question": "  ", "answer": "1"}'], r"line 1 has an empty question"),
        (['{"question": "Q", "answer": "no number here\\nat all #### "}'], r"line 1 has an answer with no final"),
        (["", "  "], r"has no problems"),
    ],
)
def test_bad_problem_files_name_the_line_and_the_fix(tmp_path, lines, message):
    with pytest.raises(ValueError, match=message):
        inputs.load_problems(_write(tmp_path, lines))


def test_missing_problem_file_and_bad_limit(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inputs.load_problems(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="limit=0"):
        inputs.load_problems("bundled", limit=0)


def test_budget_settings_turn_thinking_off_at_zero():
    off = FAST.with_budget(0, 3)
    on = FAST.with_budget(64, 3)
    assert (off.thinking, off.samples) == (False, 3)
    assert FAST.with_(temperature=0.0).with_budget(64, 3).temperature == 0.7  # k greedy copies would be identical
    assert FAST.with_(temperature=0.0).with_budget(64, 1).temperature == 0.0
    assert (on.thinking, on.max_thinking_tokens, on.resolved_budget()) == (True, 64, (64, 0))
    assert sweep.budget_of(off) == 0 and sweep.budget_of(on) == 64


# --- the report's arithmetic --------------------------------------------------------------------------


def test_points_average_pass_at_1_and_majority_over_problems():
    problems = [inputs.Problem("a", "1"), inputs.Problem("b", "2")]
    report = sweep.SweepReport(1, "t", "m", 3, [0, 8], problems)

    def cell(answers, thinking):
        correct = [a == g for a, g in zip(answers, ["1", "1", "1"], strict=True)]
        return sweep.Cell(1, answers, correct, answers[0], correct.count(True) >= 2, thinking, [2, 2, 2], 1.0, "done")

    report.cells[(0, 0)] = cell(["1", "1", "5"], [0, 0, 0])
    report.cells[(1, 0)] = cell(["3", "3", "1"], [0, 0, 0])
    report.cells[(0, 8)] = cell(["1", "1", "1"], [8, 6, 4])
    off, eight = report.points()
    assert off.n_problems == 2 and off.pass_at_1 == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert off.majority_at_k == 0.5 and off.mean_tokens == 2.0
    assert eight.n_problems == 1 and eight.pass_at_1 == 1.0 and eight.mean_thinking_tokens == 6.0
    assert eight.mean_tokens == 8.0
    text = report.to_text()
    assert "thinking off" in text and "budget 8" in text and "50.0%" in text


# --- on the tiny model ----------------------------------------------------------------------------------


def test_sweep_runs_the_grid_saves_runs_and_reopens_identically(tiny_runtime):
    problems = inputs.load_problems("bundled", limit=2)
    calls = []
    report = sweep.run_sweep(tiny_runtime, problems, [4, 0], FAST, progress=lambda d, t: calls.append((d, t)))

    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert report.budgets == [0, 4] and not report.cancelled and len(report.cells) == 4
    runs = tiny_runtime.store.sweep_runs(report.sweep_id)
    assert len(runs) == 4
    assert {r.kind for r in runs} == {"sweep"}
    assert [r.label for r in runs] == ["thinking off", "thinking off", "budget 4", "budget 4"]
    assert [r.gold for r in runs] == ["18", "3", "18", "3"]
    assert all(len(r.samples) == 2 for r in runs)
    assert all(s.thinking_tokens == 0 for r in runs[:2] for s in r.samples)

    payload = report.to_json()
    assert [p["budget"] for p in payload["points"]] == [0, 4]
    assert len(payload["problems"]) == 4 and payload["problems"][0]["k"] == 2
    assert sweep.sweep_report(tiny_runtime, report.sweep_id).to_json() == payload
    listed = sweep.list_sweep_summaries(tiny_runtime)
    assert listed[0]["sweep_id"] == report.sweep_id and listed[0]["runs"] == 4 and listed[0]["budgets"] == "0,4"


def test_cancelling_a_sweep_keeps_what_finished(tiny_runtime):
    problems = inputs.load_problems("bundled", limit=3)
    token = CancelToken()

    def cancel_after_first(done: int, total: int) -> None:
        if done == 1:
            token.cancel()

    report = sweep.run_sweep(tiny_runtime, problems, [0, 4], FAST, progress=cancel_after_first, cancel=token)
    assert report.cancelled and len(report.cells) == 1
    assert len(tiny_runtime.store.sweep_runs(report.sweep_id)) == 1
    reopened = sweep.sweep_report(tiny_runtime, report.sweep_id)
    assert reopened.cancelled and reopened.to_json()["points"] == report.to_json()["points"]


def test_sweep_refuses_bad_input_before_running(tiny_runtime):
    with pytest.raises(ValueError, match="problem set is empty"):
        sweep.run_sweep(tiny_runtime, [], [0], FAST)
    with pytest.raises(ValueError, match="max_answer_tokens=0"):
        sweep.run_sweep(tiny_runtime, [inputs.Problem("q", "1")], [0], FAST.with_(max_answer_tokens=0))
    assert tiny_runtime.store.list_sweeps() == []
    with pytest.raises(NotFound, match="sweep 99 does not exist"):
        sweep.sweep_report(tiny_runtime, 99)


# --- the CLI ----------------------------------------------------------------------------------------------


def _cli(*args: str, db_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRACELAB_DB": db_url, "TRACELAB_MODEL": "tiny"}
    return subprocess.run(
        [sys.executable, "-m", "app", "sweep", "--model", "tiny", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_sweep_json_reproduces_the_stored_report(db_url, tiny_loaded):
    done = _cli(
        "--problems",
        "bundled",
        "--budgets",
        "0,4",
        "--samples",
        "2",
        "--limit",
        "2",
        "--max-answer-tokens",
        "3",
        "--seed",
        "1",
        "--json",
        db_url=db_url,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["k"] == 2 and payload["budgets"] == [0, 4] and payload["n_problems"] == 2
    assert "4/4" in done.stderr  # progress goes to stderr, the JSON alone to stdout

    from app.services.runtime import Runtime
    from app.settings import AppSettings

    store = open_store(db_url)
    rt = Runtime(settings=AppSettings.from_env(model="tiny", db=db_url), loaded=tiny_loaded, engine=None, store=store)
    assert sweep.sweep_report(rt, payload["sweep_id"]).to_json() == payload


def test_cli_sweep_bad_budgets_is_a_one_line_error(db_url):
    done = _cli("--budgets", "0,lots", "--limit", "1", db_url=db_url)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "tracelab: budget 'lots' is not a whole number; pass e.g. 0,64,256 (0 = thinking off)"
    )
