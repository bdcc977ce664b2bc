"""Self-consistency tab: sample k traces in one batched generate, show them as cards, vote, compare two.

Owns: the tab's layout, its thin handlers and their API endpoints (``/sample``, ``/cancel_sample``,
``/side_by_side``), the sample cards and side-by-side HTML, and helpers the other analysis tabs reuse:
:func:`esc` (model output as inert HTML text) and :func:`stop_key` (a Cancel button per session and tab).
Does not know how sampling, voting or alignment work: that is ``app.services.consistency``; the charts
are ``app.ui.charts``.
"""

from __future__ import annotations

import difflib
from typing import Any

import gradio as gr

from app.domain import GenerationSettings
from app.engine.events import Progress
from app.errors import is_user_error
from app.services import consistency as svc
from app.services.runtime import Runtime
from app.services.sweep import Problem, load_problems
from app.ui import charts
from app.ui.handlers import CANCELS, MODEL_QUEUE, session_key
from app.ui.render import safe_text

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


def stop_key(request: gr.Request | None, tab: str) -> str:
    """This session's slot in the shell's cancel registry, per tab, so Cancel here stops only this tab's run."""
    return f"{session_key(request)}/{tab}"


def bundled_problems(limit: int = 50) -> list[Problem]:
    """The GSM8K sample for the "load a problem" pickers; empty (not an error) when assets/ is absent."""
    try:
        return load_problems("bundled", limit=limit)
    except (OSError, ValueError):
        return []


def _as_int(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a whole number, got {value!r}") from None


def _seed(value: Any) -> int | None:
    """-1 (the control's default), blank or any negative number means "not fixed", as in the Playground."""
    seed = _as_int(value, "seed")
    return None if seed is None or seed < 0 else seed


def settings_from_inputs(
    thinking: bool, budget: Any, max_answer: Any, temperature: Any, seed: Any
) -> GenerationSettings:
    """The analysis tabs' controls as settings with an explicit budget (``effort=None``); validated by the service."""
    return GenerationSettings(
        thinking=bool(thinking),
        effort=None,
        max_thinking_tokens=_as_int(budget, "max thinking tokens", 128),
        max_answer_tokens=_as_int(max_answer, "max answer tokens", 128) or 1,
        temperature=float(temperature if temperature is not None else 0.7),
        seed=_seed(seed),
    )


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


# --- the tab --------------------------------------------------------------------------------------


def build_tab(rt: Runtime) -> None:
    """Lay out the Self-consistency tab inside the caller's ``gr.Tab`` and wire its events."""
    max_k = max(1, min(rt.settings.max_samples, svc.MAX_K))
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
            k = gr.Slider(1, max_k, value=min(8, max_k), step=1, label="Samples (k)")
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
        stop = gr.Button("Cancel", variant="stop")
    summary = gr.HTML(css_template=CARD_CSS)
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

    def sample(
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
    ):
        settings = settings_from_inputs(think, budget_value, answer_value, temp, seed_value)
        n = _as_int(k_value, "k", 8) or 1
        if n > max_k:
            raise gr.Error(f"k={n} is more than this server allows ({max_k}); lower k")
        expected = (settings.resolved_budget()[0] if think else 0) + settings.max_answer_tokens
        key = stop_key(request, "consistency")
        token = CANCELS.begin(key)
        progress((0, expected), desc=f"sampling {n} traces")
        try:
            report = None
            for item in svc.stream_consistency(rt, prompt_text or "", settings, k=n, gold=gold_text, cancel=token):
                if isinstance(item, Progress):
                    progress((min(item.tokens, expected), expected), desc=f"{item.done}/{item.total} traces finished")
                else:
                    report = item
        except Exception as exc:
            raise user_error(exc) from exc
        finally:
            CANCELS.end(key, token)
        assert report is not None
        return (
            summary_html(report),
            charts.vote_bar(report),
            charts.tokens_scatter(report),
            cards_html(report),
            report.to_json(),
            report.run_id,
        )

    def cancel(request: gr.Request) -> None:
        if not CANCELS.cancel(stop_key(request, "consistency")):
            gr.Info("Nothing is sampling in this session.")

    def show_pair(run_value: float | None, a_value: float | None, b_value: float | None) -> str:
        run_number = _as_int(run_value, "run")
        if run_number is None:
            raise gr.Error("Sample first (or type a run number), then pick two samples to compare.")
        a_index = (_as_int(a_value, "sample A", 1) or 1) - 1
        b_index = (_as_int(b_value, "sample B", 2) or 2) - 1
        try:
            return side_by_side_html(svc.side_by_side(rt, run_number, a_index, b_index))
        except Exception as exc:
            raise user_error(exc) from exc

    example.change(load_example, example, [prompt, gold], api_visibility="private")
    run.click(
        sample,
        [prompt, gold, k, temperature, thinking, budget, max_answer, seed],
        [summary, vote_plot, scatter_plot, cards, report_json, run_id],
        api_name="sample",
        **MODEL_QUEUE,
    )
    stop.click(cancel, None, None, api_name="cancel_sample", concurrency_limit=None)
    compare.click(show_pair, [run_id, sample_a, sample_b], pair, api_name="side_by_side")
