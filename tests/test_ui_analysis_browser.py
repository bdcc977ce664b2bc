"""A real headless Chromium on the launched app: the Self-consistency vote chart renders as a plotly bar
chart, and model output with HTML and template syntax shows as text in the side-by-side view."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
def app_url(tiny_loaded, tiny_engine, tmp_path_factory):
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
    yield base, evil_run
    demo.close()


@pytest.fixture(scope="module")
def page():
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def _open_tab(page, base: str) -> None:
    page.goto(base, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Self-consistency").click()
    page.locator("#tl-sc-prompt textarea").wait_for()


def test_vote_chart_renders_bars(page, app_url):
    base, _ = app_url
    _open_tab(page, base)
    page.locator("#tl-sc-prompt textarea").fill("What is 2 + 2?")
    page.locator("#tl-sc-gold textarea, #tl-sc-gold input").first.fill("4")
    for elem_id, value in (("tl-sc-budget", "6"), ("tl-sc-answer", "3")):
        box = page.locator(f"#{elem_id} input")
        box.fill(value)
        box.press("Tab")
    page.locator("#tl-sc-run").click()

    chart = page.locator("#tl-vote-chart .js-plotly-plot")
    chart.wait_for(timeout=60_000)
    bars = chart.locator("g.trace.bars path")
    bars.first.wait_for(timeout=10_000)
    assert bars.count() >= 1
    assert "Answer distribution over 8 samples" in chart.inner_text()
    page.locator("#tl-scatter .js-plotly-plot g.scatterlayer").first.wait_for(timeout=10_000)
    assert page.locator("#tl-cards [data-sample]").count() == 8


def test_side_by_side_shows_model_html_as_text(page, app_url):
    base, evil_run = app_url
    _open_tab(page, base)
    run_box = page.locator("#tl-sc-run-id input")
    run_box.fill(str(evil_run))
    run_box.press("Tab")
    page.locator("#tl-sc-pair").click()
    view = page.locator("#tl-side-by-side table")
    view.wait_for(timeout=30_000)
    text = view.inner_text()
    assert '<img src=x onerror="window.__pwned=1">' in text
    assert "${7*7}" in text and "{{value}}" in text
    assert view.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
