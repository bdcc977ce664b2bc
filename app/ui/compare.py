"""Hybrid compare tab: one prompt with thinking off and at two or three budgets, side by side.

Owns: the layout, the thin handler behind ``/compare`` (and ``/cancel_compare``), and the column HTML.
Does not know how thinking is switched off for a model family (the engine's format does) or how the
verdict is reached (``app.services.compare``).
"""

from __future__ import annotations

import gradio as gr

from app.services import compare as svc
from app.services.runtime import Runtime
from app.services.sweep import parse_budgets
from app.ui.consistency import CARD_CSS, esc, settings_from_inputs, stop_key, user_error
from app.ui.handlers import CANCELS, MODEL_QUEUE

COLUMNS = ["variant", "answer", "thinking tokens", "answer tokens", "latency (s)", "stop", "agrees with off", "correct"]


def columns_html(report: svc.CompareReport) -> str:
    """One card per variant, in budget order, with the thinking collapsed."""
    cards = []
    for v in report.variants:
        state = "" if v.correct is None else (" tl-correct" if v.correct else " tl-wrong")
        mark = "" if v.correct is None else ("✓" if v.correct else "✗")
        answer = esc(v.extracted_answer) if v.extracted_answer is not None else "<i>no answer</i>"
        thinking = (
            f"<details><summary>Thinking ({v.thinking_tokens} tokens)</summary>"
            f"<div class='tl-text'>{esc(v.thinking) or '<i>(none)</i>'}</div></details>"
            if v.budget
            else "<div class='tl-meta'>thinking off</div>"
        )
        cards.append(
            f"<div class='tl-card{state}' data-budget='{v.budget}'><div class='tl-head'><b>{esc(v.label)}</b>"
            f"<span class='tl-ans'>{answer}</span>{mark}</div>"
            f"<div class='tl-meta'>{v.thinking_tokens} thinking + {v.answer_tokens} answer tokens · "
            f"{v.seconds:.1f} s · {esc(v.stop_reason)} · run #{v.run_id}</div>"
            f"{thinking}<div class='tl-text'>{esc(v.answer)}</div></div>"
        )
    return "<div class='tl-cards'>" + "".join(cards) + "</div>"


def verdict_html(report: svc.CompareReport) -> str:
    agree = f"agreement {report.vote.agreement:.0%}" if report.variants else ""
    return (
        f"<div class='tl-summary'><b>{esc(report.verdict)}</b><br>"
        f"{agree} · thinking off here means {esc(report.off_mode)}</div>"
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


def build_tab(rt: Runtime) -> None:
    """Lay out the Hybrid compare tab inside the caller's ``gr.Tab`` and wire its events."""
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
            max_answer = gr.Number(
                value=128, precision=0, minimum=1, label="Max answer tokens", elem_id="tl-cmp-answer"
            )
            temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label="Temperature (0 = greedy)")
            seed = gr.Number(value=-1, precision=0, label="Seed", info="-1 = not fixed")
    with gr.Row():
        run = gr.Button("Compare", variant="primary", elem_id="tl-cmp-run")
        stop = gr.Button("Cancel", variant="stop")
    verdict = gr.HTML(css_template=CARD_CSS)
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, label="Variants")
    columns = gr.HTML(css_template=CARD_CSS, elem_id="tl-compare-columns")
    with gr.Accordion("Report (JSON)", open=False):
        report_json = gr.JSON(label="Report")

    def compare(
        prompt_text: str,
        gold_text: str,
        budgets_text: str,
        answer_value: float | None,
        temp: float,
        seed_value: float | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to get a progress bar
    ):
        key = stop_key(request, "compare")
        token = CANCELS.begin(key)
        try:
            plan = parse_budgets(budgets_text or "")
            settings = settings_from_inputs(True, None, answer_value, temp, seed_value)
            report = svc.compare_thinking(
                rt,
                prompt_text or "",
                plan,
                settings,
                gold=gold_text,
                cancel=token,
                progress=lambda done, total: progress((done, total), desc=f"variant {min(done + 1, total)} of {total}"),
            )
        except Exception as exc:
            raise user_error(exc) from exc
        finally:
            CANCELS.end(key, token)
        return verdict_html(report), table_rows(report), columns_html(report), report.to_json()

    def cancel(request: gr.Request) -> None:
        if not CANCELS.cancel(stop_key(request, "compare")):
            gr.Info("Nothing is running in this session.")

    run.click(
        compare,
        [prompt, gold, budgets, max_answer, temperature, seed],
        [verdict, table, columns, report_json],
        api_name="compare",
        **MODEL_QUEUE,
    )
    stop.click(cancel, None, None, api_name="cancel_compare", concurrency_limit=None)
