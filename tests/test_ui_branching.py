"""Steering and branching in the app: "Stop thinking now" and "Think longer" through gradio_client and a real
browser; in Annotate (bundled model, real browser) branch from a step, the step-credit curve renders, and an
auto-label suggestion is accepted as the person's label."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client
from ui_support import wait_until

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.services.runs import save_result

THINKING = "Let me think about this problem.\nFirst, 3 + 4 = 7.\nThen 7 * 2 = 14.\nHmm, actually the answer is 7."
# min = max: the tiny model thinks for this many tokens unless stopped, long enough to press a button
LONG = ("custom", 1500, 1500, "Wait", 8, 0.8, 0.95, 1)


def test_stop_thinking_now_and_think_longer_through_the_api(tiny_app):
    rt, url = tiny_app
    client = Client(url, verbose=False)
    assert client.predict(api_name="/stop_thinking") == "Nothing is thinking right now."
    job = client.submit("What is 3+4?", True, *LONG, True, api_name="/generate")
    wait_until(lambda: any("Thinking…" in (u[1] or "") for u in job.outputs()), timeout=120, what="thinking to stream")
    assert "Stopping the thinking" in client.predict(api_name="/stop_thinking")
    run = job.result()[2]
    sample = run["samples"][0]
    assert sample["stop_reason"] == "user_cut" and sample["thinking_tokens"] < 1500
    assert sample["answer"].startswith("Final Answer:")

    longer = client.predict(True, "custom", 6, 0, "Wait", 8, 0.8, 0.95, 1, api_name="/think_longer")[2]
    again = longer["samples"][0]
    assert again["thinking"].startswith(sample["thinking"]) and "Wait" in again["thinking"][len(sample["thinking"]) :]
    assert again["stop_reason"] == "budget_cut"
    link = rt.db.branch_of(longer["run_id"])
    assert (link.kind, link.parent_run_id) == ("think_longer", run["run_id"])


@pytest.mark.browser
def test_stop_thinking_now_ends_thinking_within_two_tokens_in_a_browser(tiny_app, browser):
    rt, url = tiny_app
    page = browser.new_context(viewport={"width": 1400, "height": 1050}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_label("custom").check()
    page.get_by_label("Max thinking tokens").fill("1500")
    page.get_by_label("Min thinking tokens").fill("1500")
    page.get_by_label("Max answer tokens").first.fill("8")
    page.get_by_label("Temperature").first.fill("0.8")
    box = page.locator("#playground-prompt textarea")
    box.fill("What is 3+4?")
    box.press("Enter")
    stats = page.locator("#playground-stats")
    wait_until(lambda: "Thinking…" in stats.inner_text(), timeout=120, what="thinking to stream")
    page.locator("#playground-stop-thinking").click()
    text = wait_until(lambda: "Saved as run #" in (t := stats.inner_text()) and t, timeout=120, what="the saved run")
    after = int(re.search(r"thinking stopped (\d+) tokens? after you asked", text).group(1))
    assert after <= 2, text
    run = rt.db.get_run(int(text.split("run #")[1].split()[0]))
    assert run.samples[0].stop_reason == "user_cut" and run.samples[0].thinking_tokens < 1500
    page.context.close()


@pytest.mark.browser
@pytest.mark.bundled
def test_annotate_branch_curve_and_accepting_a_suggestion_on_the_bundled_model(bundled_app, browser):
    rt, url = bundled_app
    settings = GenerationSettings(effort=None, max_thinking_tokens=40, max_answer_tokens=6)
    sample = SampleResult(0, "", THINKING, "Final Answer: 7", 30, 4, "end")
    run_id = save_result(rt, GenerationResult("bundled", "prompted", settings, [sample], "What is 3 + 4?"))
    sample_id = rt.db.get_run(run_id).samples[0].sample_id

    page = browser.new_context(viewport={"width": 1300, "height": 1800}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("tab", name="Annotate").click()
    name = page.locator("#tl-annotator textarea, #tl-annotator input").first
    name.fill("carol")
    name.press("Enter")
    page.wait_for_selector("#tl-progress :text('samples labelled')")
    page.locator("#tl-pick input").fill(str(sample_id))
    page.locator("#tl-open").click()
    page.wait_for_selector("#tl-steps [data-pos]")
    page.locator("#tl-steps [data-pos='1']").click()
    wait_until(lambda: page.locator("#tl-cursor input").input_value() == "1", timeout=30, what="step 2 selected")
    page.get_by_text("Branch, step credit and auto labels").click()
    page.locator("#tl-rollouts input").fill("2")
    page.locator("#tl-gold textarea, #tl-gold input").first.fill("7")

    page.locator("#tl-branch-here").click()
    result = page.locator("#tl-branch-result")
    result.wait_for(timeout=240_000)
    branch_run = int(result.inner_text().split("run #")[1].split()[0])
    link = rt.db.branch_of(branch_run)
    assert (link.parent_run_id, link.parent_step_index, link.kind) == (run_id, 1, "resample")

    page.locator("#tl-credit").click()
    page.wait_for_selector("#tl-credit-plot .js-plotly-plot", timeout=400_000)
    assert "Step credit of 5 steps" in page.locator("#tl-branch-status").inner_text()

    page.locator("#tl-autolabel").click()
    wait_until(lambda: "Stored 5 auto labels" in page.locator("#tl-branch-status").inner_text(), timeout=400,
               what="auto labels to be stored")  # fmt: skip
    suggestion = page.locator("#tl-suggestion-box")
    wait_until(lambda: "Suggestion" in suggestion.inner_text(), timeout=30, what="the suggestion to show")
    hard = suggestion.get_attribute("data-hard") == "1"
    step_id = rt.db.steps_for_sample(sample_id)[1].step_id
    assert rt.db.current_labels(sample_id, "carol") == {}  # a suggestion is not a label
    page.locator("#tl-accept-suggestion").click()
    wait_until(lambda: step_id in rt.db.current_labels(sample_id, "carol"), timeout=30, what="the accepted label")
    assert rt.db.current_labels(sample_id, "carol")[step_id].rating == (1 if hard else -1)
    step = page.locator("#tl-steps [data-pos='1']")
    wanted = "1" if hard else "-1"
    wait_until(lambda: step.get_attribute("data-rating") == wanted, timeout=30, what="the step to show the label")
    page.context.close()
