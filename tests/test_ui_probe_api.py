"""The Probe tab through gradio_client, over the tiny model and a real SQLite file: a typed problem is probed,
the report and chart come back and reopen from the store the same; bad input is one line naming the fix."""

from __future__ import annotations

import json

import pytest


def test_probe_a_typed_problem_then_reopen_it(client):
    summary, chart, table, flipped, report, past = client.predict(
        None, "What is 2 + 2? <b>bold</b>", "4", 3, "sycophancy", False, 2, 6, 4, 0.8, 0, api_name="/probe"
    )
    assert report["hint"] == "sycophancy" and report["n_problems"] == 1 and report["k"] == 2
    assert report["problems"][0]["hint_answer"] == "7" and len(report["problems"][0]["hinted_answers"]) == 2
    assert "flip rate" in summary and "<b>bold</b>" not in summary
    figure = json.loads(chart["plot"]) if isinstance(chart.get("plot"), str) else chart["plot"]
    assert [t["type"] for t in figure["data"]] == ["bar", "bar"]
    assert table["data"][0][2] == "7"
    reopened = client.predict(report["probe_id"], api_name="/probe_report")
    assert reopened[4] == report and reopened[2]["data"] == table["data"]
    with pytest.raises(Exception, match="probe 9999 does not exist"):
        client.predict(9999, api_name="/probe_report")


def test_probe_bad_input_names_the_fix(client):
    with pytest.raises(Exception, match="is not a number, so the hint has no wrong answer"):
        client.predict(None, "Capital of France?", "Paris", 3, "professor", False, 2, 6, 4, 0.8, 0, api_name="/probe")
    with pytest.raises(Exception, match=r"must be at most 32 \(you gave 999\)"):  # the k slider's cap, named
        client.predict(None, "What is 1+1?", "2", 3, "professor", False, 999, 6, 4, 0.8, 0, api_name="/probe")
