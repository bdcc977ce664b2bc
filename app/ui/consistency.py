"""Self-consistency tab: sample k traces in one batched generate, show them as cards, vote, compare two.

Owns: the tab's layout, its thin handlers (:class:`SelfConsistency`) and their API endpoints (``/sample``,
which streams its progress, ``/cancel_sample``, ``/side_by_side``), the sample cards and side-by-side HTML,
and helpers the other analysis tabs reuse: :func:`esc` (model output as inert HTML text),
:func:`user_error` and :func:`status_html`. Does not know how sampling, voting or alignment work (that is
``app.services.consistency``, which also enforces the server's cap on k); the charts are ``app.ui.charts``.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import gradio as gr

from app.engine.events import Progress
from app.errors import is_user_error
from app.services import consistency as svc
from app.services.runtime import Runtime
from app.ui import charts
from app.ui.handlers import MODEL_QUEUE, UPDATE_EVERY, Done, ModelTab, bundled_problems, in_background, user_of
from app.ui.inputs import analysis_settings, as_int
from app.ui.render import safe_text

DEFAULT_K = 8

CARD_CSS = """
.tl-summary { font-size: 1.05em; margin: 4px 0; }
.tl-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 10px; }
.tl-card { border: 1px solid #cfd8dc; border-left: 6px solid #90a4ae; border-radius: 6px; padding: 8px 10px; }
.tl-card.tl-correct { border-left-color: #2e7d32; }
.tl-card.tl-wrong { border-left-color: #c62828; }
.tl-head { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.tl-ans { font-family: monospace; font-weight: 600; overflow-wrap: anywhere; }
.tl-badge { font-size: 0.8em; padding: 0 6px; border-radius: 8px; background: #e3f2fd; }
.tl-meta { font-size: 0.85em; color: #607d8b; margin: 4px 0; }
.tl-text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.9em; max-height: 320px; overflow: auto; }
.tl-sbs { width: 100%; border-collapse: collapse; table-layout: fixed; }
.tl-sbs td, .tl-sbs th { border: 1px solid #eceff1; padding: 4px 6px; vertical-align: top; white-space: pre-wrap;
  overflow-wrap: anywhere; font-size: 0.9em; }
.tl-sbs tr.tl-equal td { color: #607d8b; }
.tl-sbs tr.tl-replace td { background: #fffde7; }
.tl-sbs tr.tl-delete td:first-child, .tl-sbs tr.tl-insert td:last-child { background: #fce4ec; }
.tl-sbs del { background: #ffcdd2; text-decoration: line-through; }
.tl-sbs ins { background: #c8e6c9; text-decoration: none; }
"""


def esc(text: str | None) -> str:
    """Model output as inert HTML text: tags escaped, and ``$``/``{``/``}`` too, so the HTML component's
    ``${...}``/``{{...}}`` templating can't evaluate it."""
    safe = safe_text(text)
    return safe.replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;")


def user_error(exc: Exception) -> gr.Error:
    """A bad input or a store refusal as a one-line ``gr.Error``; anything else is re-raised as a bug."""
    if is_user_error(exc):
        return gr.Error(str(exc))
    raise exc


def status_html(text: str) -> str:
    """A one-line status in the summary's place while a run is queued, running or stopped early."""
    return f"<div class='tl-summary'>{esc(text)}</div>"


# --- HTML -----------------------------------------------------------------------------------------


def summary_html(report: svc.ConsistencyReport) -> str:
    v = report.vote
    answered = v.n - v.abstained
    parts = [
        f"<b>Majority: <span class='tl-ans'>{esc(v.majority) if v.majority is not None else '(none)'}</span></b>",
        f"{v.counts[0][1] if v.counts else 0}/{v.n} samples ({v.share:.0%})",
        f"agreement {v.agreement:.0%} of the {answered} that answered",
    ]
    if report.gold is not None:
        mark = "✓ majority correct" if v.majority_correct else "✗ majority wrong"
        right = sum(1 for s in report.samples if s.correct)
        parts.append(f"gold <span class='tl-ans'>{esc(report.gold)}</span>: {mark} · {right}/{v.n} samples correct")
    overthinking = report.mean_overthinking()
    if overthinking is not None:
        parts.append(f"mean overthinking {overthinking:.0f} tokens after the answer first appeared")
    parts.append(f"run #{report.run_id} · {report.seconds:.1f} s · {report.status}")
    if report.error:
        parts.append(f"error: {esc(report.error)}")
    return "<div class='tl-summary'>" + " · ".join(parts) + "</div>"


def cards_html(report: svc.ConsistencyReport) -> str:
    cards = []
    for s in report.samples:
        state = "" if s.correct is None else (" tl-correct" if s.correct else " tl-wrong")
        mark = "" if s.correct is None else ("✓" if s.correct else "✗")
        badge = "<span class='tl-badge'>majority</span>" if s.in_majority else ""
        reached = ""
        if s.first_answer_position is not None:
            reached = f" · answer reached at {s.first_answer_position:.0%} of the thinking ({s.overthinking_tokens} tokens after)"
        answer = esc(s.extracted_answer) if s.extracted_answer is not None else "<i>no answer</i>"
        cards.append(
            f"<div class='tl-card{state}' data-sample='{s.index}'>"
            f"<div class='tl-head'><b>#{s.index + 1}</b><span class='tl-ans'>{answer}</span>{mark}{badge}</div>"
            f"<div class='tl-meta'>{s.thinking_tokens} thinking + {s.answer_tokens} answer tokens · {esc(s.stop_reason)}"
            f" · {s.seconds:.1f} s{reached}</div>"
            f"<details><summary>Thinking ({s.thinking_tokens} tokens)</summary>"
            f"<div class='tl-text'>{esc(s.thinking) or '<i>(no thinking)</i>'}</div></details>"
            f"<div class='tl-text'>{esc(s.answer)}</div></div>"
        )
    return "<div class='tl-cards'>" + "".join(cards) + "</div>"


def _word_diff(left: str, right: str) -> tuple[str, str]:
    """Both texts as escaped HTML with the words only one side has wrapped in ``<del>``/``<ins>``."""
    a, b = left.split(" "), right.split(" ")
    out_a, out_b = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        chunk_a, chunk_b = esc(" ".join(a[i1:i2])), esc(" ".join(b[j1:j2]))
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
        f"A answered <span class='tl-ans'>{esc(view.a.extracted_answer) or '(none)'}</span>, "
        f"B answered <span class='tl-ans'>{esc(view.b.extracted_answer) or '(none)'}</span></p>"
    )
    rows = [f"<tr><th>Sample {view.a.index + 1}</th><th>Sample {view.b.index + 1}</th></tr>"]
    for row in view.rows:
        if row.tag == "replace":
            left, right = _word_diff(row.left or "", row.right or "")
        else:
            left, right = esc(row.left or ""), esc(row.right or "")
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
        with self.running(request) as token:
            try:
                settings = analysis_settings(think, budget_value, answer_value, temp, seed_value)
                n = as_int(k_value, "k", DEFAULT_K) or 0
            except ValueError as exc:
                raise gr.Error(str(exc)) from None
            if token.cancelled:  # Cancel was pressed while the run waited in the queue
                yield status_html("Cancelled before it started; nothing was run."), None, None, "", None, None
                return
            expected = (settings.resolved_budget()[0] if think else 0) + settings.max_answer_tokens
            started, last = time.perf_counter(), 0.0
            latest: Progress | None = None
            work = in_background(
                lambda report: svc.sample_consistency(
                    self.rt,
                    prompt_text or "",
                    settings,
                    k=n,
                    gold=gold_text,
                    cancel=token,
                    progress=report,
                    user=user_of(request),
                ),
                token,
            )
            try:
                with closing(work):
                    for item in work:
                        if isinstance(item, Done):
                            result: svc.ConsistencyReport = item.value
                            break
                        now = time.perf_counter()
                        if item is not None:  # else a heartbeat: yield anyway, so a closed tab is noticed
                            latest = item
                            if now - last < UPDATE_EVERY:
                                continue
                        last = now
                        done = ""
                        if latest is not None:
                            done = f" {latest.done}/{latest.total} traces finished · {latest.tokens} tokens ·"
                            progress((min(latest.tokens, expected), expected), desc=done.strip(" ·"))
                        text = f"Sampling {n} traces…{done} {now - started:.1f} s"
                        yield status_html(text), None, None, "", None, None
            except Exception as exc:
                raise user_error(exc) from exc
        yield (
            summary_html(result),
            charts.vote_bar(result),
            charts.tokens_scatter(result),
            cards_html(result),
            result.to_json(),
            result.run_id,
        )

    def side_by_side(self, run_value: float | None, a_value: float | None, b_value: float | None) -> str:
        """Two samples of a run with their steps aligned (``NotFound``/bad numbers become a ``gr.Error``)."""
        try:
            run_number = as_int(run_value, "run")
            a_index = (as_int(a_value, "sample A", 1) or 1) - 1
            b_index = (as_int(b_value, "sample B", 2) or 2) - 1
            if run_number is None:
                raise gr.Error("Sample first (or type a run number), then pick two samples to compare.")
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
            temperature = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="Temperature")
            with gr.Row():
                thinking = gr.Checkbox(value=True, label="Thinking")
                budget = gr.Number(
                    value=128, precision=0, minimum=0, label="Max thinking tokens", elem_id="tl-sc-budget"
                )
                max_answer = gr.Number(
                    value=128, precision=0, minimum=1, label="Max answer tokens", elem_id="tl-sc-answer"
                )
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
            sample_a = gr.Number(value=1, precision=0, minimum=1, label="Sample A")
            sample_b = gr.Number(value=2, precision=0, minimum=1, label="Sample B")
            compare = gr.Button("Side by side", elem_id="tl-sc-pair")
        pair = gr.HTML(css_template=CARD_CSS, elem_id="tl-side-by-side")
    with gr.Accordion("Report (JSON)", open=False):
        report_json = gr.JSON(label="Report")

    def load_example(index: int | None) -> tuple[str, str]:
        if index is None or not 0 <= int(index) < len(problems):
            return gr.update(), gr.update()  # type: ignore[return-value]
        problem = problems[int(index)]
        return problem.question, problem.gold

    example.change(load_example, example, [prompt, gold], api_visibility="private")
    run.click(
        tab.prepare, None, None, api_visibility="private", concurrency_limit=None, show_progress="hidden"
    ).success(
        tab.sample,
        [prompt, gold, k, temperature, thinking, budget, max_answer, seed],
        [summary, vote_plot, scatter_plot, cards, report_json, run_id],
        api_name="sample",
        **MODEL_QUEUE,
    )
    stop.click(tab.cancel, None, None, api_name="cancel_sample", concurrency_limit=None)
    compare.click(tab.side_by_side, [run_id, sample_a, sample_b], pair, api_name="side_by_side")
