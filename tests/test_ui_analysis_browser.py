"""A real headless Chromium on the launched app: the Self-consistency vote chart renders as a plotly bar
chart, model output with HTML and template syntax shows as text in the side-by-side view, a Cancel clicked
while the run waits behind the model stops it before it starts, and closing the page stops a running sweep."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from gradio_client import Client
from ui_support import wait_until

from app.engine.torch_thread import model_thread_idle

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and os.environ.get("TRACELAB_REQUIRE_BROWSER") != "1":
    pytest.skip(
        f"{CHROMIUM} is missing (set TRACELAB_REQUIRE_BROWSER=1 to make this a failure)", allow_module_level=True
    )

playwright_sync = pytest.importorskip("playwright.sync_api")

from app.domain import GenerationResult, GenerationSettings, SampleResult  # noqa: E402
from app.services.runs import save_result  # noqa: E402
from app.ui.server import launch_for_tests  # noqa: E402

EVIL = '<img src=x onerror="window.__pwned=1"> ${7*7} {{value}}'


@pytest.fixture(scope="module")
def analysis_app(tiny_loaded, tiny_engine, tmp_path_factory):
    from app.services.runtime import Runtime
    from app.settings import AppSettings
    from app.store.db import open_store

    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'tracelab.db'}"
    rt = Runtime(
        settings=AppSettings.from_env(model="tiny", db=url, data_dir=str(folder)),
        loaded=tiny_loaded,
        engine=tiny_engine,
        store=open_store(url),
    )
    samples = [
        SampleResult(
            index=i,
            raw_text="",
            thinking=f"Same first step.\n{EVIL} {i}",
            answer="Final Answer: 4",
            thinking_tokens=4,
            answer_tokens=3,
            stop_reason="end",
        )
        for i in range(2)
    ]
    evil_run = save_result(
        rt,
        GenerationResult(
            model="m", format="prompted", settings=GenerationSettings(samples=2), samples=samples, prompt="2 + 2?"
        ),
        kind="consistency",
    )
    demo, base = launch_for_tests(rt)
    yield rt, base, evil_run
    demo.close()


@pytest.fixture(scope="module")
def app_url(analysis_app):
    _, base, evil_run = analysis_app
    return base, evil_run


def _open_tab(page, base: str) -> None:
    page.goto(base, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Self-consistency").click()
    page.locator("#tl-sc-prompt textarea").wait_for()


def test_vote_chart_renders_bars(module_page, app_url):
    base, _ = app_url
    _open_tab(module_page, base)
    module_page.locator("#tl-sc-prompt textarea").fill("What is 2 + 2?")
    module_page.locator("#tl-sc-gold textarea, #tl-sc-gold input").first.fill("4")
    for elem_id, value in (("tl-sc-budget", "6"), ("tl-sc-answer", "3")):
        box = module_page.locator(f"#{elem_id} input")
        box.fill(value)
        box.press("Tab")
    module_page.locator("#tl-sc-run").click()

    chart = module_page.locator("#tl-vote-chart .js-plotly-plot")
    chart.wait_for(timeout=60_000)
    bars = chart.locator("g.trace.bars path")
    bars.first.wait_for(timeout=10_000)
    assert bars.count() >= 1
    assert "Answer distribution over 8 samples" in chart.inner_text()
    module_page.locator("#tl-scatter .js-plotly-plot g.scatterlayer").first.wait_for(timeout=10_000)
    assert module_page.locator("#tl-cards [data-sample]").count() == 8


def test_side_by_side_shows_model_html_as_text(module_page, app_url):
    base, evil_run = app_url
    _open_tab(module_page, base)
    run_box = module_page.locator("#tl-sc-run-id input")
    run_box.fill(str(evil_run))
    run_box.press("Tab")
    module_page.locator("#tl-sc-pair").click()
    view = module_page.locator("#tl-side-by-side table")
    view.wait_for(timeout=30_000)
    text = view.inner_text()
    assert '<img src=x onerror="window.__pwned=1">' in text
    assert "${7*7}" in text and "{{value}}" in text
    assert view.locator("img").count() == 0
    assert module_page.evaluate("window.__pwned") is None


def test_cancel_while_waiting_for_the_model_stops_the_run_before_it_starts(module_page, analysis_app):
    rt, base, _ = analysis_app
    busy = Client(base, verbose=False)  # another session holds the model with a long Playground run
    job = busy.submit(
        prompt="hold the model", effort="custom", max_thinking_tokens=4000, min_thinking_tokens=4000,
        temperature=0.8, seed=1, api_name="/generate",
    )  # fmt: skip
    wait_until(lambda: job.outputs(), what="the long run to start")
    _open_tab(module_page, base)
    module_page.locator("#tl-sc-prompt textarea").fill("queued then cancelled")
    module_page.locator("#tl-sc-run").click()
    time.sleep(0.5)  # the click is registered; the run itself waits behind the model
    module_page.locator("#tl-sc-cancel").click()
    busy.predict(api_name="/cancel")
    job.result(timeout=60)
    summary = module_page.locator("#tl-sc-summary")
    wait_until(lambda: "Cancelled before it started" in summary.inner_text(), what="the cancelled-before-start note")
    assert not rt.store.list_runs(search="queued then cancelled")


def test_closing_the_page_stops_a_running_sweep_and_frees_the_model(module_page, analysis_app):
    rt, base, _ = analysis_app
    closing = module_page.context.browser.new_page()
    closing.goto(base, wait_until="domcontentloaded")
    closing.get_by_role("tab", name="Sweep").click()
    limit = closing.locator("#tl-sw-limit input")
    limit.fill("20")
    limit.press("Tab")
    closing.locator("#tl-sw-budgets textarea, #tl-sw-budgets input").first.fill("0,64")
    closing.locator("#tl-sw-run").click()
    summary = closing.locator("#tl-sw-summary")
    wait_until(lambda: "1 of 40 problem × budget runs done" in summary.inner_text(), what="the sweep to get going")
    closing.close()

    def settled() -> int | None:
        before = rt.store.list_sweeps()[0].n_runs
        time.sleep(0.5)
        return before if rt.store.list_sweeps()[0].n_runs == before and model_thread_idle() else None

    assert wait_until(settled, timeout=30, what="the sweep to stop") < 40
