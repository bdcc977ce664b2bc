"""Test-time scaling sweep tab: accuracy vs thinking budget over a problem set, and reopening past sweeps.

Owns: the layout and the thin handlers (:class:`Sweep`) behind ``/sweep`` (which streams how many problem x
budget runs are done), ``/cancel_sweep``, ``/list_sweeps`` and ``/sweep_report``. The grid, the scores and the
rebuild-from-store are ``app.services.sweep``; the inputs (budgets, problem file, cap on k) ``app.services.inputs``;
the curves are ``app.ui.charts``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from app.domain import budget_label
from app.services import sweep as svc
from app.services.inputs import check_samples, load_problems, parse_budgets
from app.services.runtime import Runtime
from app.ui import charts
from app.ui.caller import user_of
from app.ui.control_values import analysis_settings, as_int
from app.ui.fields import SettingSlider, WholeNumber, problem_file, report_controls
from app.ui.render import CARD_CSS, html_text
from app.ui.running import MODEL_QUEUE, PREPARE, ModelTab, Work, counted, open_saved

TABLE_COLUMNS = ["problem", "budget", "gold", "majority", "correct / k", "majority correct", "thinking tokens", "run"]
SWEEP_COLUMNS = ["sweep", "name", "created", "problems", "budgets", "k", "runs"]


def summary_html(report: svc.SweepReport) -> str:
    points = report.points()
    best = max(points, key=lambda p: (p.majority_at_k, p.pass_at_1, -p.budget), default=None)
    parts = [
        f"<b>Sweep #{report.sweep_id}</b> · {html_text(report.model)} · {len(report.problems)} problems · k={report.k}"
    ]
    if best is not None and best.n_problems:
        parts.append(
            f"best: {html_text(best.label)} with pass@1 {best.pass_at_1:.0%}, majority@{report.k} {best.majority_at_k:.0%}"
        )
    if report.cancelled:
        parts.append("<b>partial</b>: cancelled or unfinished; the scores cover the problems that finished")
    return "<div class='tl-summary'>" + " · ".join(parts) + "</div>"


def table_rows(report: svc.SweepReport) -> list[list[Any]]:
    return [
        [
            row["problem"],
            budget_label(row["budget"]),
            row["gold"],
            row["majority"] or "",
            f"{row['correct']}/{row['k']}",
            "yes" if row["majority_correct"] else "no",
            row["mean_thinking_tokens"],
            row["run_id"],
        ]
        for row in report.rows()
    ]


def sweep_choices(rt: Runtime) -> list[tuple[str, int]]:
    return [
        (f"#{s['sweep_id']} · {s['name']} · {s['created_at']}", s["sweep_id"]) for s in svc.list_sweep_summaries(rt)
    ]


def _outputs(rt: Runtime, report: svc.SweepReport) -> tuple:
    points = report.points()
    return (
        summary_html(report),
        charts.accuracy_curve(points, report.k),
        charts.tokens_per_budget(points),
        table_rows(report),
        report.to_json(),
        gr.Dropdown(choices=sweep_choices(rt), value=report.sweep_id),
    )


class Sweep(ModelTab):
    """The tab's handlers over one :class:`Runtime`; methods are wired as Gradio events."""

    tab = "sweep"
    idle_message = "No sweep is running in this session."

    def run(
        self,
        file_path: str | None,
        limit_value: float | None,
        budgets_text: str,
        k_value: float,
        temp: float,
        answer_value: float | None,
        seed_value: float | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress bar
    ) -> Iterator[tuple[Any, ...]]:
        """Stream (summary, accuracy chart, tokens chart, table, report JSON, past sweeps): how many runs are done,
        then the report. Closing the stream (the browser went away) cancels the sweep; finished runs are kept."""
        total = 0  # problem x budget runs: set by plan(), read by describe()

        def plan() -> Work[svc.SweepReport]:
            nonlocal total
            budgets = parse_budgets(budgets_text or "")
            problems = load_problems(file_path or "bundled", limit=as_int(limit_value, "first N problems"))
            n = check_samples(as_int(k_value, "k", 1) or 0, self.rt.settings.max_samples)
            settings = analysis_settings(True, None, answer_value, temp, seed_value).with_(samples=n)
            total = len(budgets) * len(problems)
            return lambda token, report: svc.run_sweep(
                self.rt, problems, budgets, settings, cancel=token,
                progress=lambda finished, of: report((finished, of)), user=user_of(request),
            )  # fmt: skip

        def count(done: int, of: int) -> None:
            progress((done, of), desc=f"{done} of {of} problem × budget runs")

        yield from self.stream_report(
            request, plan, describe=counted(lambda: total, "problem × budget runs done", count),
            outputs=lambda report: _outputs(self.rt, report), cleared=4,
            cancelled="Sweep cancelled: the report covers the runs that finished.",
        )  # fmt: skip

    def open_report(self, sweep_id: Any) -> tuple[Any, ...]:
        """A past sweep's report, rebuilt from the store."""
        return open_saved(sweep_id, "sweep", lambda number: _outputs(self.rt, svc.sweep_report(self.rt, number)))

    def list_sweeps(self) -> tuple[list[list[Any]], gr.Dropdown]:
        rows = svc.list_sweep_summaries(self.rt)
        table_data = [
            [r["sweep_id"], r["name"], r["created_at"], r["problems"], r["budgets"], r["k"], r["runs"]] for r in rows
        ]
        return table_data, gr.Dropdown(choices=sweep_choices(self.rt))


def build_tab(rt: Runtime) -> None:
    """Lay out the Sweep tab inside the caller's ``gr.Tab`` and wire its events."""
    tab = Sweep(rt)
    max_k = max(1, rt.settings.max_samples)
    gr.Markdown(
        "Accuracy vs thinking budget: every problem at every budget, k samples each (0 = thinking off). "
        "Runs are saved, so a sweep can be reopened below. The same report: `python -m app sweep --json`."
    )
    with gr.Row():
        with gr.Column(scale=2):
            problems_file = problem_file()
            limit = WholeNumber(value=5, minimum=1, label="First N problems", elem_id="tl-sw-limit")
        with gr.Column(scale=2):
            budgets = gr.Textbox(
                value="0,64,256", label="Thinking budgets (comma-separated, 0 = off)", elem_id="tl-sw-budgets"
            )
            k = gr.Slider(1, max_k, value=min(4, max_k), step=1, label="Samples per problem (k)", elem_id="tl-sw-k")
            with gr.Row():
                temperature = SettingSlider("temperature", 0.7, step=0.05, label="Temperature")
                max_answer = WholeNumber(value=128, minimum=1, label="Max answer tokens", elem_id="tl-sw-answer")
                seed = gr.Number(value=-1, precision=0, label="Seed", info="-1 = not fixed")
    controls = report_controls("sweep", "sw", sweep_choices(rt))
    run, stop, past, refresh, reopen = (controls.run, controls.stop, controls.past, controls.refresh, controls.reopen)
    summary = gr.HTML(css_template=CARD_CSS, elem_id="tl-sw-summary")
    with gr.Row():
        accuracy = gr.Plot(label="Accuracy vs budget", elem_id="tl-accuracy-chart")
        tokens = gr.Plot(label="Tokens per budget", elem_id="tl-tokens-chart")
    table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, wrap=True, label="Per-problem outcomes")
    with gr.Accordion("Report (JSON)", open=False):
        report_json = gr.JSON(label="Report")
    with gr.Accordion("All sweeps", open=False):
        sweeps_table = gr.Dataframe(headers=SWEEP_COLUMNS, interactive=False, label="Sweeps")

    outputs = [summary, accuracy, tokens, table, report_json, past]
    run.click(tab.prepare, None, None, **PREPARE).success(
        tab.run,
        [problems_file, limit, budgets, k, temperature, max_answer, seed],
        outputs,
        api_name="sweep",
        **MODEL_QUEUE,
    )
    stop.click(tab.cancel, None, None, api_name="cancel_sweep", concurrency_limit=None)
    refresh.click(tab.list_sweeps, None, [sweeps_table, past], api_name="list_sweeps")
    reopen.click(tab.open_report, past, outputs, api_name="sweep_report")
