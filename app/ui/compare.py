"""Hybrid compare tab: one prompt with thinking off and at two or three budgets, side by side.

Owns: the layout, the thin handlers (:class:`HybridCompare`) behind ``/compare`` (which streams which variant
is running, through ``app.ui.running``) and ``/cancel_compare``, and the verdict and column HTML.
Does not know how thinking is switched off for a model family (the engine's format does) or how the
verdict is reached (``app.services.compare``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from app.services import compare as svc
from app.services.inputs import parse_budgets
from app.services.runtime import Runtime
from app.ui.caller import user_of
from app.ui.control_values import analysis_settings
from app.ui.fields import SettingSlider, WholeNumber
from app.ui.render import CARD_CSS, card_html, cards_html, html_text, status_html
from app.ui.running import MODEL_QUEUE, PREPARE, ModelTab, Work

COLUMNS = ["variant", "answer", "thinking tokens", "answer tokens", "latency (s)", "stop", "agrees with off", "correct"]


def columns_html(report: svc.CompareReport) -> str:
    """One card per variant, in budget order, with the thinking collapsed."""
    return cards_html(
        [
            card_html(v, title=v.label, data=f"data-budget='{v.budget}'", correct=v.correct,
                      meta=f" · run #{v.run_id}", thinking=v.budget > 0)
            for v in report.variants
        ]
    )  # fmt: skip


def verdict_html(report: svc.CompareReport) -> str:
    agree = f"agreement {report.vote.agreement:.0%}" if report.variants else ""
    return (
        f"<div class='tl-summary'><b>{html_text(report.verdict)}</b><br>"
        f"{agree} · thinking off here means {html_text(report.off_mode)}</div>"
    )


def table_rows(report: svc.CompareReport) -> list[list]:
    return [
        [
            v.label,
            v.extracted_answer or "",
            v.thinking_tokens,
            v.answer_tokens,
            round(v.seconds, 2),
            v.stop_reason,
            "yes" if v.agrees_with_off else "no",
            "" if v.correct is None else ("yes" if v.correct else "no"),
        ]
        for v in report.variants
    ]


class HybridCompare(ModelTab):
    """The tab's handlers over one :class:`Runtime`; methods are wired as Gradio events."""

    tab = "compare"

    def compare(
        self,
        prompt_text: str,
        gold_text: str,
        budgets_text: str,
        answer_value: float | None,
        temp: float,
        seed_value: float | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress bar
    ) -> Iterator[tuple[Any, ...]]:
        """Stream (verdict, table, columns, report JSON): which variant is running, then the comparison.
        Closing the stream (the browser went away) cancels the running variant; it is still saved."""

        def plan() -> Work[svc.CompareReport]:
            budgets = parse_budgets(budgets_text or "")
            settings = analysis_settings(True, None, answer_value, temp, seed_value)
            return lambda token, report: svc.compare_thinking(
                self.rt, prompt_text or "", budgets, settings, gold=gold_text, cancel=token,
                progress=lambda finished, of: report((finished, of)), user=user_of(request),
            )  # fmt: skip

        def describe(latest: tuple[int, int] | None, seconds: float) -> str:
            done, total = latest or (0, 0)
            if total:
                progress((done, total), desc=f"variant {min(done + 1, total)} of {total}")
            running = f"Running variant {min(done + 1, total)} of {total}" if total else "Starting"
            return f"{running}… {seconds:.1f} s"

        yield from self.stream_task(
            request,
            plan,
            show=lambda text: (status_html(text), None, "", None),
            describe=describe,
            finish=lambda result: (verdict_html(result), table_rows(result), columns_html(result), result.to_json()),
        )


def build_tab(rt: Runtime) -> None:
    """Lay out the Hybrid compare tab inside the caller's ``gr.Tab`` and wire its events."""
    tab = HybridCompare(rt)
    fmt = rt.loaded.format
    how = (
        "a hybrid model: thinking is switched off by its chat template"
        if fmt.hybrid
        else "an always-thinking model: 'off' prefills an empty thinking block"
        if fmt.always_thinks
        else "a model prompted to think: 'off' drops the thinking instructions"
    )
    gr.Markdown(f"Is thinking worth it here? The same prompt with thinking off and at a few budgets. This is {how}.")
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(label="Prompt", lines=4, elem_id="tl-cmp-prompt")
            gold = gr.Textbox(label="Gold answer (optional)", elem_id="tl-cmp-gold")
        with gr.Column(scale=2):
            budgets = gr.Textbox(
                value="64,256", label="Thinking budgets (2-3, comma-separated)", elem_id="tl-cmp-budgets"
            )
            max_answer = WholeNumber(value=128, minimum=1, label="Max answer tokens", elem_id="tl-cmp-answer")
            temperature = SettingSlider("temperature", 0.0, step=0.05, label="Temperature (0 = greedy)")
            seed = gr.Number(value=-1, precision=0, label="Seed", info="-1 = not fixed")
    with gr.Row():
        run = gr.Button("Compare", variant="primary", elem_id="tl-cmp-run")
        stop = gr.Button("Cancel", variant="stop", elem_id="tl-cmp-cancel")
    verdict = gr.HTML(css_template=CARD_CSS)
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, label="Variants")
    columns = gr.HTML(css_template=CARD_CSS, elem_id="tl-compare-columns")
    with gr.Accordion("Report (JSON)", open=False):
        report_json = gr.JSON(label="Report")

    run.click(tab.prepare, None, None, **PREPARE).success(
        tab.compare,
        [prompt, gold, budgets, max_answer, temperature, seed],
        [verdict, table, columns, report_json],
        api_name="compare",
        **MODEL_QUEUE,
    )
    stop.click(tab.cancel, None, None, api_name="cancel_compare", concurrency_limit=None)
