"""The Self-consistency, Hybrid compare and Sweep tabs through their API endpoints, with gradio_client
against a really launched app (tiny random model, real SQLite), plus the tabs' HTML escaping."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.engine.torch_thread import model_thread_idle

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from gradio_client import handle_file  # noqa: E402

from app.domain import GenerationResult, GenerationSettings, SampleResult  # noqa: E402
from app.services.consistency import build_report  # noqa: E402
from app.services.runs import finish_result, save_result  # noqa: E402

K = 3
REQUEST = SimpleNamespace(session_hash="handler-test")  # what the handlers read from a gr.Request


def build_analysis_demo(rt) -> gr.Blocks:
    """The three analysis tabs in one Blocks, as the app shell lays them out (one ``gr.Tab`` each)."""
    from app.ui import compare, consistency, sweep

    with gr.Blocks() as demo:
        with gr.Tab("Self-consistency"):
            consistency.build_tab(rt)
        with gr.Tab("Hybrid compare"):
            compare.build_tab(rt)
        with gr.Tab("Sweep"):
            sweep.build_tab(rt)
    return demo


def launch(rt) -> tuple[gr.Blocks, str]:
    """The shell's ``launch_for_tests`` when it exists, else the three tabs on their own."""
    try:
        from app.ui.server import launch_for_tests
    except ImportError:
        demo = build_analysis_demo(rt)
        demo.queue()
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        return demo, url
    return launch_for_tests(rt)


@pytest.fixture(scope="module")
def analysis_rt(tiny_loaded, tiny_engine, tmp_path_factory):
    from app.services.runtime import Runtime
    from app.settings import AppSettings
    from app.store.db import open_store

    folder = tmp_path_factory.mktemp("analysis")
    url = f"sqlite:///{folder / 'tracelab.db'}"
    settings = AppSettings.from_env(model="tiny", db=url, data_dir=str(folder), max_samples=8)
    return Runtime(settings=settings, loaded=tiny_loaded, engine=tiny_engine, store=open_store(url))


@pytest.fixture(scope="module")
def served_url(analysis_rt):
    """The clients here talk to the analysis tabs over ``analysis_rt`` (conftest's ``client`` uses this)."""
    demo, url = launch(analysis_rt)
    yield url
    demo.close()


def _figure(plot: dict) -> dict:
    assert plot["type"] == "plotly"
    return json.loads(plot["plot"])


def test_endpoints_are_named(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {
        "/sample",
        "/cancel_sample",
        "/side_by_side",
        "/compare",
        "/cancel_compare",
        "/sweep",
        "/cancel_sweep",
        "/list_sweeps",
        "/sweep_report",
    } <= names


def test_sample_votes_and_charts_then_side_by_side(client, analysis_rt):
    summary, vote, scatter, cards, report, run_id = client.predict(
        "What is 2 + 2?", "4", K, 0.8, True, 6, 3, 11, api_name="/sample"
    )
    assert report["k"] == K and report["run_id"] == run_id and report["gold"] == "4"
    bars = _figure(vote)["data"][0]
    assert bars["type"] == "bar" and sum(bars["y"]) == K
    assert {t["type"] for t in _figure(scatter)["data"]} == {"scatter"}
    assert cards.count("data-sample=") == K and "Majority" in summary and f"run #{run_id}" in summary
    assert analysis_rt.store.get_run(run_id).kind == "consistency"

    pair = client.predict(run_id, 1, K, api_name="/side_by_side")
    assert "<table class='tl-sbs'>" in pair and f"Sample {K}" in pair
    with pytest.raises(Exception, match=f"sample {K + 1} does not exist"):
        client.predict(run_id, 1, K + 1, api_name="/side_by_side")


def test_sample_refuses_more_than_the_server_allows_and_empty_prompts(client):
    with pytest.raises(Exception, match=r"must be at most 8 \(you gave 9\)|more than this server allows"):
        client.predict("2 + 2?", "", 9, 0.8, True, 4, 2, None, api_name="/sample")
    with pytest.raises(Exception, match="prompt is empty"):
        client.predict("   ", "", 2, 0.8, True, 4, 2, None, api_name="/sample")
    # a number box's own range check names the box and what was given (Gradio's says "Value -5 is less...")
    with pytest.raises(Exception, match=r"Max thinking tokens must be at least 0 \(you gave -5\)"):
        client.predict("2 + 2?", "", 2, 0.8, True, -5, 2, None, api_name="/sample")
    with pytest.raises(Exception, match=r"Max answer tokens must be at least 1 \(you gave 0\)"):
        client.predict("2 + 2?", "", 2, 0.8, True, 4, 0, None, api_name="/sample")


def test_both_k_sliders_stop_at_the_servers_max_samples(client):
    sliders = {c["props"].get("elem_id"): c["props"] for c in client.config["components"] if c["type"] == "slider"}
    assert sliders["tl-sc-k"]["maximum"] == 8 and sliders["tl-sw-k"]["maximum"] == 8


def test_the_handlers_refuse_k_above_max_samples_with_the_services_message(analysis_rt):
    from app.ui.consistency import SelfConsistency
    from app.ui.sweep import Sweep

    message = "k=9 is more than this server allows [(]max_samples=8[)]; lower k or start with --max-samples 9"
    with pytest.raises(gr.Error, match=message):
        list(SelfConsistency(analysis_rt).sample("2 + 2?", "", 9, 0.8, True, 4, 2, None, REQUEST))
    with pytest.raises(gr.Error, match=message):
        list(Sweep(analysis_rt).run(None, 1, "0", 9, 0.8, 2, None, REQUEST))
    with pytest.raises(gr.Error, match="max_answer_tokens=0 must be >= 1"):  # passed through, not replaced
        list(SelfConsistency(analysis_rt).sample("2 + 2?", "", 2, 0.8, True, 4, 0, None, REQUEST))


def test_sample_and_sweep_stream_their_progress_before_the_report(client):
    job = client.submit("What is 2 + 2?", "4", 2, 0.8, True, 16, 2, 5, api_name="/sample")
    report = job.result(timeout=120)[4]
    outputs = job.outputs()
    assert len(outputs) > 1 and "Sampling 2 traces…" in outputs[0][0] and outputs[0][4] is None
    assert outputs[-1][4] == report

    job = client.submit(None, 2, "0,4", 1, 0.8, 2, 1, api_name="/sweep")
    report = job.result(timeout=120)[4]
    progress = [out[0] for out in job.outputs()[:-1]]
    assert "0 of 4 problem × budget runs done" in progress[0] and report["n_problems"] == 2


def test_cancel_without_a_run_is_harmless(client, analysis_rt):
    before = analysis_rt.store.count_runs()
    for name in ("/cancel_sample", "/cancel_compare", "/cancel_sweep"):
        assert client.predict(api_name=name) == ()  # no error, no output
    assert analysis_rt.store.count_runs() == before and model_thread_idle()  # nothing ran, nothing was saved


def test_compare_shows_off_and_each_budget(client):
    verdict, table, columns, report = client.predict("What is 2 + 2?", "4", "8, 4", 3, 0.0, 1, api_name="/compare")
    assert [row[0] for row in table["data"]] == ["thinking off", "budget 4", "budget 8"]
    assert table["data"][0][2] == 0  # no thinking tokens with thinking off
    assert columns.count("data-budget=") == 3 and report["verdict"] in html.unescape(verdict)
    with pytest.raises(Exception, match="not a whole number"):
        client.predict("2 + 2?", "", "64,lots", 3, 0.0, None, api_name="/compare")


def test_sweep_with_an_uploaded_file_then_reopen_from_the_list(client, tmp_path: Path):
    problems = tmp_path / "two.jsonl"
    problems.write_text(
        json.dumps({"question": "What is 2 + 2?", "answer": "#### 4"})
        + "\n"
        + json.dumps({"question": "What is 3 + 3?", "answer": "6"})
        + "\n",
        encoding="utf-8",
    )
    summary, accuracy, tokens, table, report, past = client.predict(
        handle_file(str(problems)), 5, "0,4", 2, 0.8, 3, 2, api_name="/sweep"
    )
    assert report["n_problems"] == 2 and [p["budget"] for p in report["points"]] == [0, 4]
    curves = _figure(accuracy)["data"]
    assert [c["name"] for c in curves] == ["pass@1", "majority@2"] and curves[0]["x"] == ["thinking off", "budget 4"]
    assert {t["type"] for t in _figure(tokens)["data"]} == {"bar"}
    assert len(table["data"]) == 4 and {row[2] for row in table["data"]} == {"4", "6"}

    listed, dropdown = client.predict(api_name="/list_sweeps")
    assert report["sweep_id"] in [row[0] for row in listed["data"]]
    reopened = client.predict(report["sweep_id"], api_name="/sweep_report")
    assert reopened[4] == report and reopened[3]["data"] == table["data"]
    with pytest.raises(Exception, match="sweep 9999 does not exist"):
        client.predict(9999, api_name="/sweep_report")


def test_sweep_names_the_bad_line_of_an_uploaded_file(client, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q", "answer": "1"}\n{"question": "no answer"}\n', encoding="utf-8")
    with pytest.raises(Exception, match="line 2 has no answer field"):
        client.predict(handle_file(str(bad)), 5, "0", 1, 0.8, 3, None, api_name="/sweep")


# --- cancelling: while queued, and when the browser goes away ------------------------------------------


def test_a_cancel_while_queued_stops_each_tab_before_it_starts(analysis_rt):
    from app.ui.compare import HybridCompare
    from app.ui.consistency import SelfConsistency
    from app.ui.running import CancelRegistry
    from app.ui.sweep import Sweep

    registry, runs, sweeps = CancelRegistry(), analysis_rt.store.count_runs(), len(analysis_rt.store.list_sweeps())
    calls = [
        (SelfConsistency, "sample", ("2 + 2?", "", 2, 0.8, True, 4, 2, None)),
        (HybridCompare, "compare", ("2 + 2?", "", "4", 2, 0.0, None)),
        (Sweep, "run", (None, 2, "0,4", 2, 0.8, 2, None)),
    ]
    for tab_class, method, args in calls:
        tab = tab_class(analysis_rt, registry)
        tab.prepare(REQUEST)  # the click, before the event waits behind the model
        tab.cancel(REQUEST)  # Cancel while it waits
        outputs = list(getattr(tab, method)(*args, REQUEST))
        assert len(outputs) == 1 and "Cancelled before it started" in outputs[0][0], tab_class.__name__
    assert analysis_rt.store.count_runs() == runs and len(analysis_rt.store.list_sweeps()) == sweeps
    assert registry.running("handler-test/consistency") == 0


def test_closing_the_sample_stream_cancels_the_run_frees_the_model_and_saves_it(analysis_rt):
    from app.ui.consistency import SelfConsistency
    from app.ui.running import CancelRegistry

    registry = CancelRegistry()
    stream = SelfConsistency(analysis_rt, registry).sample("walk away", "", 2, 0.8, True, 4000, 2, 1, REQUEST)
    while "tokens" not in next(stream)[0]:  # decoding has started
        pass
    closed = time.monotonic()
    stream.close()  # what Gradio does when the browser goes away
    assert time.monotonic() - closed < 10
    assert model_thread_idle() and registry.running("handler-test/consistency") == 0
    (summary,) = analysis_rt.store.list_runs(search="walk away")
    assert summary.kind == "consistency" and set(summary.stop_reasons) == {"cancelled"}


def test_closing_the_sweep_stream_stops_the_sweep(analysis_rt):
    from app.ui.running import CancelRegistry
    from app.ui.sweep import Sweep

    registry = CancelRegistry()
    stream = Sweep(analysis_rt, registry).run(None, 20, "0,8", 2, 0.8, 3, None, REQUEST)
    assert "0 of 40 problem × budget runs done" in next(stream)[0]
    stream.close()
    sweep = analysis_rt.store.list_sweeps()[0]
    assert sweep.n_runs < 40 and registry.running("handler-test/sweep") == 0
    assert model_thread_idle()
    time.sleep(0.5)
    assert analysis_rt.store.list_sweeps()[0].n_runs == sweep.n_runs  # nothing runs on in the background


# --- escaping: model output is text, never HTML -----------------------------------------------------

EVIL = "<img src=x onerror=alert(1)> ${7*7} {{value}} <script>alert(2)</script>"


def test_cards_summary_and_side_by_side_escape_model_output(analysis_rt):
    from app.services.consistency import side_by_side
    from app.ui.consistency import sample_cards_html, side_by_side_html, summary_html

    samples = [
        SampleResult(
            index=i,
            raw_text="",
            thinking=f"{EVIL}\nstep two {i}",
            answer=f"Final Answer: {EVIL}",
            thinking_tokens=5,
            answer_tokens=5,
            stop_reason="end",
        )
        for i in range(2)
    ]
    result = GenerationResult(
        model="m", format="prompted", settings=GenerationSettings(samples=2), samples=samples, prompt="p"
    )
    finish_result(result)
    run_id = save_result(analysis_rt, result, kind="consistency")
    report = build_report(result, run_id, gold=EVIL)
    for page in (
        sample_cards_html(report),
        summary_html(report),
        side_by_side_html(side_by_side(analysis_rt, run_id, 0, 1)),
    ):
        assert "<img" not in page and "<script" not in page and "${" not in page and "{{" not in page
        assert "&#60;img src&#61;x onerror&#61;alert&#40;1&#41;&#62;" in page


def test_cancel_sweep_stops_a_running_sweep_and_returns_the_partial_report(client, analysis_rt):
    import time

    from gradio_client.utils import Status

    job = client.submit(None, 20, "0,8", 2, 0.8, 3, None, api_name="/sweep")
    deadline = time.monotonic() + 60
    while job.status().code != Status.PROGRESS and time.monotonic() < deadline:  # the first cell is running
        time.sleep(0.05)
    client.predict(api_name="/cancel_sweep")
    report = job.result(timeout=120)[4]
    assert report["cancelled"] is True
    finished = sum(p["n_problems"] for p in report["points"])
    assert finished < 40
    assert len(analysis_rt.store.sweep_runs(report["sweep_id"])) in (finished, finished + 1)


# --- the controls ---------------------------------------------------------------------------------


def test_controls_read_as_whole_numbers_and_pass_bad_values_on_to_validation():
    from app.ui.control_values import analysis_settings, as_int, as_seed

    assert (as_int(3.0, "k"), as_int("", "k", 8), as_int(None, "k")) == (3, 8, None)
    with pytest.raises(ValueError, match="k must be a whole number, got 2.5"):
        as_int(2.5, "k")
    assert (as_seed(-1), as_seed(None), as_seed(7)) == (None, None, 7)
    settings = analysis_settings(True, None, None, None, "-1")
    assert (settings.max_thinking_tokens, settings.max_answer_tokens, settings.seed) == (128, 128, None)
    with pytest.raises(ValueError, match="max_answer_tokens=0 must be >= 1"):
        analysis_settings(True, None, 0, None, "-1")


# --- the chart builders (pure plotly) ----------------------------------------------------------------


def test_vote_bar_colours_answers_against_gold_and_shows_abstentions():
    from app.ui import charts

    long_a, long_b = "x" * 40 + "A", "x" * 40 + "B"  # shorten to the same label: the bars must stay apart
    answers = ["18", "<b>17</b>", long_a, long_b, None, "18"]
    samples = [
        SampleResult(
            index=i,
            raw_text="",
            thinking="",
            answer=f"Final Answer: {a}" if a else "",
            thinking_tokens=i,
            answer_tokens=1,
            stop_reason="end",
        )
        for i, a in enumerate(answers)
    ]
    result = GenerationResult(
        model="m", format="prompted", settings=GenerationSettings(samples=6), samples=samples, prompt="p"
    )
    finish_result(result)
    figure = charts.vote_bar(build_report(result, 1, gold="18")).to_dict()
    bar = figure["data"][0]
    assert list(bar["y"]) == [2, 1, 1, 1, 1]
    assert list(bar["marker"]["color"]) == [charts.CORRECT, charts.WRONG, charts.WRONG, charts.WRONG, charts.NONE]
    assert len(set(bar["x"])) == 5 and bar["x"][1] == "&lt;b&gt;17&lt;/b&gt;" and bar["x"][-1] == "(no answer)"
    assert "majority correct" in figure["layout"]["title"]["text"]

    scatter = charts.tokens_scatter(build_report(result, 1, gold="18")).to_dict()
    assert {t["name"] for t in scatter["data"]} >= {"correct", "wrong", "(no answer)"}


def test_accuracy_and_token_charts_have_one_point_per_budget():
    from app.services.sweep import BudgetPoint
    from app.ui import charts

    points = [
        BudgetPoint(0, "thinking off", 5, 0.2, 0.2, 0.0, 30.0, 1.0),
        BudgetPoint(64, "budget 64", 5, 0.4, 0.6, 60.0, 90.0, 3.0),
    ]
    curves = charts.accuracy_curve(points, k=4).to_dict()["data"]
    assert [c["name"] for c in curves] == ["pass@1", "majority@4"]
    assert list(curves[1]["y"]) == [0.2, 0.6] and list(curves[0]["x"]) == ["thinking off", "budget 64"]
    bars = charts.tokens_per_budget(points).to_dict()["data"]
    assert [list(b["y"]) for b in bars] == [[0.0, 60.0], [30.0, 30.0]]
