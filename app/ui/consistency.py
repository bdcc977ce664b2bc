"""Self-consistency tab: sample k traces in one batched generate, show them as cards, vote, compare two.

Owns: the tab's layout, its thin handlers (:class:`SelfConsistency`) and their API endpoints (``/sample``,
which streams its progress through ``app.ui.running``, ``/cancel_sample``, ``/side_by_side``), and the
summary and side-by-side HTML. Does not know how sampling, voting or alignment work (that is
``app.services.consistency``, which also enforces the server's cap on k); cards and escaping are
``app.ui.render``, the charts ``app.ui.charts``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

import gradio as gr

from app.engine.events import Progress
from app.services import consistency as svc
from app.services.inputs import bundled_problems
from app.services.runtime import Runtime
from app.ui import branch_here, charts, lens_branch
from app.ui.caller import user_of
from app.ui.control_values import analysis_settings, as_int
from app.ui.fields import SettingSlider, WholeNumber
from app.ui.lens import add_lens
from app.ui.refusal import refusal
from app.ui.render import CARD_CSS, card_html, cards_html, html_text, status_html
from app.ui.running import MODEL_QUEUE, PREPARE, UPDATE_EVERY, ModelTab, Work, user_error

DEFAULT_K = 8


# --- HTML -----------------------------------------------------------------------------------------


def summary_html(report: svc.ConsistencyReport) -> str:
    v = report.vote
    answered = v.n - v.abstained
    parts = [
        f"<b>Majority: <span class='tl-ans'>{html_text(v.majority) if v.majority is not None else '(none)'}</span></b>",
        f"{v.counts[0][1] if v.counts else 0}/{v.n} samples ({v.share:.0%})",
        f"agreement {v.agreement:.0%} of the {answered} that answered",
    ]
    if report.gold is not None:
        mark = "✓ majority correct" if v.majority_correct else "✗ majority wrong"
        right = sum(1 for s in report.samples if s.correct)
        parts.append(
            f"gold <span class='tl-ans'>{html_text(report.gold)}</span>: {mark} · {right}/{v.n} samples correct"
        )
    overthinking = report.mean_overthinking()
    if overthinking is not None:
        parts.append(f"mean overthinking {overthinking:.0f} tokens after the answer first appeared")
    parts.append(f"run #{report.run_id} · {report.seconds:.1f} s · {report.status}")
    if report.error:
        parts.append(f"error: {html_text(report.error)}")
    return "<div class='tl-summary'>" + " · ".join(parts) + "</div>"


def sample_cards_html(report: svc.ConsistencyReport) -> str:
    """One card per sample: its answer, ✓/✗ against the gold, a majority badge and where the answer appeared."""
    cards = []
    for s in report.samples:
        reached = ""
        if s.first_answer_position is not None:
            reached = f" · answer reached at {s.first_answer_position:.0%} of the thinking ({s.overthinking_tokens} tokens after)"
        if s.mean_entropy is not None:
            reached += f" · mean entropy {s.mean_entropy:.2f} nats · {s.forking_tokens} forking tokens"
        reached += f" · {s.pivots} pivot{'s' if s.pivots != 1 else ''}"
        badge = "<span class='tl-badge'>majority</span>" if s.in_majority else ""
        cards.append(
            card_html(
                s,
                title=f"#{s.index + 1}",
                data=f"data-sample='{s.index}'",
                correct=s.correct,
                badge=badge,
                meta=reached,
            )
        )
    return cards_html(cards)


def _word_diff(left: str, right: str) -> tuple[str, str]:
    """Both texts as escaped HTML with the words only one side has wrapped in ``<del>``/``<ins>``."""
    a, b = left.split(" "), right.split(" ")
    out_a, out_b = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        chunk_a, chunk_b = html_text(" ".join(a[i1:i2])), html_text(" ".join(b[j1:j2]))
        if tag == "equal":
            out_a.append(chunk_a)
            out_b.append(chunk_b)
        else:
            if chunk_a:
                out_a.append(f"<del>{chunk_a}</del>")
            if chunk_b:
                out_b.append(f"<ins>{chunk_b}</ins>")
    return " ".join(out_a), " ".join(out_b)


def side_by_side_html(view: svc.SideBySide) -> str:
    head = (
        f"<p>{view.identical_steps} of {len(view.rows)} aligned rows identical · "
        f"A answered <span class='tl-ans'>{html_text(view.a.extracted_answer) or '(none)'}</span>, "
        f"B answered <span class='tl-ans'>{html_text(view.b.extracted_answer) or '(none)'}</span></p>"
    )
    rows = [f"<tr><th>Sample {view.a.index + 1}</th><th>Sample {view.b.index + 1}</th></tr>"]
    for row in view.rows:
        if row.tag == "replace":
            left, right = _word_diff(row.left or "", row.right or "")
        else:
            left, right = html_text(row.left or ""), html_text(row.right or "")
        rows.append(f"<tr class='tl-{row.tag}'><td>{left}</td><td>{right}</td></tr>")
    return head + "<table class='tl-sbs'>" + "".join(rows) + "</table>"


# --- the handlers ---------------------------------------------------------------------------------


class SelfConsistency(ModelTab):
    """The tab's handlers over one :class:`Runtime`; methods are wired as Gradio events."""

    tab = "consistency"
    idle_message = "Nothing is sampling in this session."

    def sample(
        self,
        prompt_text: str,
        gold_text: str,
        k_value: float,
        temp: float,
        think: bool,
        budget_value: float | None,
        answer_value: float | None,
        seed_value: float | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress bar
    ) -> Iterator[tuple[Any, ...]]:
        """Stream (summary, vote chart, scatter, cards, report JSON, run id): a status line while the k samples
        decode, then the report. Closing the stream (the browser went away) cancels the run; it is still saved."""
        n, expected = 0, 0  # k and the most tokens one trace may take: set by plan(), read by describe()

        def plan() -> Work[svc.ConsistencyReport]:
            nonlocal n, expected
            settings = analysis_settings(think, budget_value, answer_value, temp, seed_value)
            n = as_int(k_value, "k", DEFAULT_K) or 0
            expected = (settings.resolved_budget()[0] if think else 0) + settings.max_answer_tokens
            return lambda token, report: svc.sample_consistency(
                self.rt, prompt_text or "", settings, k=n, gold=gold_text, cancel=token, progress=report,
                user=user_of(request),
            )  # fmt: skip

        def describe(latest: Progress | None, seconds: float) -> str:
            done = ""
            if latest is not None:
                done = f" {latest.done}/{latest.total} traces finished · {latest.tokens} tokens ·"
                progress((min(latest.tokens, expected), expected), desc=done.strip(" ·"))
            return f"Sampling {n} traces…{done} {seconds:.1f} s"

        yield from self.stream_task(
            request,
            plan,
            show=lambda text: (status_html(text), None, None, "", None, None),
            describe=describe,
            finish=lambda result: (
                summary_html(result),
                charts.vote_bar(result),
                charts.tokens_scatter(result),
                sample_cards_html(result),
                result.to_json(),
                result.run_id,
            ),
            every=UPDATE_EVERY,
        )

    def side_by_side(self, run_value: float | None, a_value: float | None, b_value: float | None) -> str:
        """Two samples of a run with their steps aligned (``NotFound``/bad numbers become a ``gr.Error``)."""
        try:
            run_number = as_int(run_value, "run")
            a_index = (as_int(a_value, "sample A", 1) or 1) - 1
            b_index = (as_int(b_value, "sample B", 2) or 2) - 1
            if run_number is None:
                raise refusal("Sample first (or type a run number), then pick two samples to compare.")
            return side_by_side_html(svc.side_by_side(self.rt, run_number, a_index, b_index))
        except Exception as exc:
            raise user_error(exc) from exc


# --- the tab --------------------------------------------------------------------------------------


def build_tab(rt: Runtime) -> None:
    """Lay out the Self-consistency tab inside the caller's ``gr.Tab`` and wire its events."""
    tab = SelfConsistency(rt)
    max_k = max(1, rt.settings.max_samples)
    problems = bundled_problems()

    gr.Markdown(
        "Sample **k** traces of one prompt in a single batched generate, then let them vote. "
        "With a gold answer each sample is marked correct or wrong."
    )
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(
                label="Prompt", lines=4, placeholder="A problem with a checkable answer", elem_id="tl-sc-prompt"
            )
            with gr.Row():
                example = gr.Dropdown(
                    choices=[(f"{i + 1}. {p.question[:70]}", i) for i, p in enumerate(problems)],
                    value=None,
                    label="Load a GSM8K problem",
                    scale=3,
                )
                gold = gr.Textbox(label="Gold answer (optional)", scale=1, elem_id="tl-sc-gold")
        with gr.Column(scale=2):
            k = gr.Slider(1, max_k, value=min(DEFAULT_K, max_k), step=1, label="Samples (k)", elem_id="tl-sc-k")
            temperature = SettingSlider("temperature", 0.7, step=0.05, label="Temperature")
            with gr.Row():
                thinking = gr.Checkbox(value=True, label="Thinking")
                budget = WholeNumber(value=128, minimum=0, label="Max thinking tokens", elem_id="tl-sc-budget")
                max_answer = WholeNumber(value=128, minimum=1, label="Max answer tokens", elem_id="tl-sc-answer")
                seed = gr.Number(value=-1, precision=0, label="Seed", info="-1 = not fixed")
    with gr.Row():
        run = gr.Button("Sample and vote", variant="primary", elem_id="tl-sc-run")
        stop = gr.Button("Cancel", variant="stop", elem_id="tl-sc-cancel")
    summary = gr.HTML(css_template=CARD_CSS, elem_id="tl-sc-summary")
    with gr.Row():
        vote_plot = gr.Plot(label="Vote", elem_id="tl-vote-chart")
        scatter_plot = gr.Plot(label="Thinking tokens vs answer", elem_id="tl-scatter")
    cards = gr.HTML(css_template=CARD_CSS, elem_id="tl-cards")
    with gr.Accordion("Compare two samples side by side", open=True):
        with gr.Row():
            run_id = gr.Number(value=None, precision=0, label="Run #", elem_id="tl-sc-run-id")
            sample_a = WholeNumber(value=1, minimum=1, label="Sample A")
            sample_b = WholeNumber(value=2, minimum=1, label="Sample B")
            compare = gr.Button("Side by side", elem_id="tl-sc-pair")
        pair = gr.HTML(css_template=CARD_CSS, elem_id="tl-side-by-side")
    with gr.Accordion("Branch here: resample a card from one of its steps", open=False):
        branch_here.build(rt, "sc", run_id)
    with gr.Accordion("Report (JSON)", open=False):
        report_json = gr.JSON(label="Report")
    lens = add_lens(report_json, "tl-sc")
    with gr.Accordion("Branch from a token: click a thinking token in the lens", open=True):
        lens_branch.build(rt, "sc", lens, run_id)

    def load_example(index: int | None) -> tuple[str, str]:
        if index is None or not 0 <= int(index) < len(problems):
            return gr.update(), gr.update()  # type: ignore[return-value]
        problem = problems[int(index)]
        return problem.question, problem.gold

    example.change(load_example, example, [prompt, gold], api_visibility="private")
    run.click(tab.prepare, None, None, **PREPARE).success(
        tab.sample,
        [prompt, gold, k, temperature, thinking, budget, max_answer, seed],
        [summary, vote_plot, scatter_plot, cards, report_json, run_id],
        api_name="sample",
        **MODEL_QUEUE,
    )
    stop.click(tab.cancel, None, None, api_name="cancel_sample", concurrency_limit=None)
    compare.click(tab.side_by_side, [run_id, sample_a, sample_b], pair, api_name="side_by_side")
