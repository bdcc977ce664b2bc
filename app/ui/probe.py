"""Probe tab: the hint-faithfulness probe (does a hint flip the answer; does the trace admit it), reopenable.

Owns: the layout and the thin handlers (:class:`Probe`) behind ``/probe`` (streams how many arms are done),
``/cancel_probe``, ``/list_probes`` and ``/probe_report``. The probe, its measures and the rebuild-from-store are
``app.services.probe``; the long-task loop is ``app.ui.running``; the chart is ``app.ui.charts``. All model
text is escaped (the matched hint span is highlighted with ``<mark>`` around escaped text).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from app.reasoning.hints import HINT_TYPES
from app.services import probe as svc
from app.services.inputs import Problem, check_samples, load_problems, normalise_gold
from app.services.runtime import Runtime
from app.ui import charts
from app.ui.control_values import analysis_settings, as_int
from app.ui.fields import SettingSlider, WholeNumber, problem_file, report_controls
from app.ui.render import CARD_CSS, html_text
from app.ui.running import MODEL_QUEUE, PREPARE, ModelTab, Work, counted, open_saved

TABLE_COLUMNS = ["problem", "gold", "hint X", "without hint", "with hint", "flipped", "verbalised", "runs"]


def summary_html(report: svc.ProbeReport) -> str:
    rate = "n/a" if report.flip_rate is None else f"{report.flip_rate:.0%}"
    verbalised = "n/a (nothing flipped)" if report.verbalised_rate is None else f"{report.verbalised_rate:.0%}"
    parts = [
        f"<b>Probe #{report.probe_id}</b> · {html_text(report.model)} · {html_text(report.hint)} hint "
        f"({'correct' if report.hint_correct else 'wrong'} answer) · {len(report.outcomes)} problems · k={report.k}",
        f"flip rate <b>{rate}</b> ({report.flips} flips)",
        f"verbalised <b>{verbalised}</b>",
    ]
    if report.cancelled:
        parts.append("<b>partial</b>: cancelled or unfinished; the figures cover the problems that finished")
    return "<div class='tl-summary'>" + " · ".join(parts) + "</div>"


def table_rows(report: svc.ProbeReport) -> list[list[Any]]:
    return [
        [
            o.index + 1,
            o.gold,
            o.target,
            ", ".join(str(a) for a in o.baseline_answers),
            ", ".join(str(a) for a in o.hinted_answers),
            f"{len(o.flips)}/{o.pairs}",
            o.verbalised,
            f"{o.baseline_run_id} / {o.hinted_run_id}",
        ]
        for o in report.outcomes
    ]


def flips_html(report: svc.ProbeReport) -> str:
    """Each flipped sample's trace, escaped, with the span that mentions the hint highlighted."""
    cards = []
    for o in report.outcomes:
        for f in o.flips:
            if f.verbalised and f.start is not None and f.end is not None:
                body = (
                    html_text(f.trace[: f.start])
                    + f"<mark class='tl-hint'>{html_text(f.trace[f.start : f.end])}</mark>"
                    + html_text(f.trace[f.end :])
                )
                note = f"verbalised ({html_text(f.rule)})"
            else:
                body, note = html_text(f.trace), "not verbalised"
            cards.append(
                f"<div class='tl-card' data-problem='{o.index}' data-sample='{f.sample}'>"
                f"<div><b>Problem {o.index + 1}, sample {f.sample + 1}</b> · answered {html_text(f.answer)} · "
                f"{note}</div><div class='tl-trace' style='white-space: pre-wrap'>{body}</div></div>"
            )
    return "".join(cards) or "<p>No sample flipped to the hint's answer.</p>"


def probe_choices(rt: Runtime) -> list[tuple[str, int]]:
    return [
        (f"#{p['probe_id']} · {p['name']} · {p['created_at']}", p["probe_id"]) for p in svc.list_probe_summaries(rt)
    ]


def _outputs(rt: Runtime, report: svc.ProbeReport) -> tuple:
    data = report.to_json()
    return (
        summary_html(report),
        charts.probe_chart(data["problems"]),
        table_rows(report),
        flips_html(report),
        data,
        gr.Dropdown(choices=probe_choices(rt), value=report.probe_id),
    )


class Probe(ModelTab):
    """The tab's handlers over one :class:`Runtime`; methods are wired as Gradio events."""

    tab = "probe"
    idle_message = "No probe is running in this session."

    def run(
        self,
        file_path: str | None,
        question: str,
        gold: str,
        limit_value: float | None,
        hint: str,
        hint_correct: bool,
        k_value: float,
        budget: float | None,
        answer_value: float | None,
        temp: float,
        seed_value: float | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Stream (summary, chart, table, flipped traces, report JSON, past probes): arms done, then the report."""
        total = 0

        def plan() -> Work[svc.ProbeReport]:
            nonlocal total
            if (question or "").strip():
                problems = [Problem(question=question.strip(), gold=normalise_gold(gold) or "")]
            else:
                problems = load_problems(file_path or "bundled", limit=as_int(limit_value, "first N problems"))
            svc.prepare_problems(problems, hint, bool(hint_correct))  # bad golds fail here, as one line
            n = check_samples(as_int(k_value, "k", 1) or 0, self.rt.settings.max_samples)
            settings = analysis_settings(True, budget, answer_value, temp, seed_value).with_(samples=n)
            total = 2 * len(problems)
            return lambda token, report: svc.run_probe(
                self.rt, problems, hint, settings, hint_correct=bool(hint_correct), cancel=token,
                progress=lambda finished, of: report((finished, of)),
            )  # fmt: skip

        yield from self.stream_report(
            request, plan, describe=counted(lambda: total, "arms done (k samples without, then with the hint)"),
            outputs=lambda report: _outputs(self.rt, report), cleared=4,
            cancelled="Probe cancelled: the report covers the problems that finished.",
        )  # fmt: skip

    def open_report(self, probe_id: Any) -> tuple[Any, ...]:
        """A past probe's report, rebuilt from the store."""
        return open_saved(probe_id, "probe", lambda number: _outputs(self.rt, svc.probe_report(self.rt, number)))

    def list_probes(self) -> gr.Dropdown:
        return gr.Dropdown(choices=probe_choices(self.rt))


def build_tab(rt: Runtime) -> None:
    """Lay out the Probe tab inside the caller's ``gr.Tab`` and wire its events."""
    tab = Probe(rt)
    max_k = max(1, rt.settings.max_samples)
    gr.Markdown(
        "Hint-faithfulness probe: each problem is sampled k times without a hint and k times with one pointing at "
        "an answer X. A **flip** is a sample that moves to X with the hint; it is **verbalised** when its trace "
        "mentions the hint. The same report: `python -m app probe --json`."
    )
    with gr.Row():
        with gr.Column(scale=2):
            problems_file = problem_file()
            with gr.Row():
                question = gr.Textbox(label="…or type one problem", lines=2, scale=3, elem_id="tl-pr-question")
                gold = gr.Textbox(label="Its gold answer", scale=1, elem_id="tl-pr-gold")
            limit = WholeNumber(value=3, minimum=1, label="First N problems", elem_id="tl-pr-limit")
        with gr.Column(scale=2):
            hint = gr.Radio(list(HINT_TYPES), value="professor", label="Hint", elem_id="tl-pr-hint")
            hint_correct = gr.Checkbox(value=False, label="Hint gives the correct answer (default: a wrong one)")
            k = gr.Slider(1, max_k, value=min(4, max_k), step=1, label="Samples per arm (k)", elem_id="tl-pr-k")
            with gr.Row():
                budget = WholeNumber(value=128, minimum=0, label="Max thinking tokens", elem_id="tl-pr-budget")
                max_answer = WholeNumber(value=64, minimum=1, label="Max answer tokens", elem_id="tl-pr-answer")
                temperature = SettingSlider("temperature", 0.7, step=0.05, label="Temperature")
                seed = gr.Number(value=0, precision=0, label="Seed", info="both arms share it")
    controls = report_controls("probe", "pr", probe_choices(rt))
    run, stop, past, refresh, reopen = (controls.run, controls.stop, controls.past, controls.refresh, controls.reopen)
    summary = gr.HTML(css_template=CARD_CSS, elem_id="tl-pr-summary")
    chart = gr.Plot(label="Hint answer without vs with the hint", elem_id="tl-probe-chart")
    table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, wrap=True, label="Per-problem outcomes")
    with gr.Accordion("Flipped samples (the matched mention highlighted)", open=True):
        flipped = gr.HTML(css_template=CARD_CSS, elem_id="tl-pr-flips")
    with gr.Accordion("Report (JSON)", open=False):
        report_json = gr.JSON(label="Report")

    outputs = [summary, chart, table, flipped, report_json, past]
    inputs = [problems_file, question, gold, limit, hint, hint_correct, k, budget, max_answer, temperature, seed]
    run.click(tab.prepare, None, None, **PREPARE).success(tab.run, inputs, outputs, api_name="probe", **MODEL_QUEUE)
    stop.click(tab.cancel, None, None, api_name="cancel_probe", concurrency_limit=None)
    refresh.click(tab.list_probes, None, past, api_name="list_probes")
    reopen.click(tab.open_report, past, outputs, api_name="probe_report")
