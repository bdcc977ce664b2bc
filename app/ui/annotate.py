"""The Annotate tab: a queue of samples, PRM800K-style step ratings with keyboard shortcuts, merge/split, a
whole-sample verdict, preferences between samples of one prompt, and (a sub-tab) inter-annotator agreement.

An adapter over ``app.services.labeling``: every callback reads the annotator, calls one service function and
re-renders the sample from the store, so what two people do at once in two browsers always shows up. Refused
actions (a label on a step someone just merged or split, a step after the first error) become a ``gr.Warning``
and a reload, never a silent drop. Model and user text is escaped before it reaches HTML.
The named API endpoints live in ``annotate_api``; this module's events are private to the page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import gradio as gr

from app.services import labeling
from app.services.runtime import Runtime
from app.store.errors import StoreError
from app.ui import agreement, annotate_api
from app.ui.render import safe_text

esc = safe_text  # model and user text is only ever placed in element content, never in attributes
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
RATING_STYLE: dict[int | None, tuple[str, str]] = {
    1: ("#16a34a", "+1"),
    0: ("#6b7280", "0"),
    -1: ("#dc2626", "-1"),
    None: ("#cbd5e1", "·"),
}
QUEUE_HEADERS = ["sample", "run", "#", "model", "prompt", "steps", "labelled", "done"]
HISTORY_HEADERS = ["time (UTC)", "annotator", "rating", "first error", "comment"]
VERDICTS = ["correct", "incorrect", "no verdict"]

#: Shortcut key -> elem_id of the button it clicks. Keys typed into a text field are left alone.
SHORTCUTS: dict[str, str] = {
    "1": "tl-rate-good", "+": "tl-rate-good", "2": "tl-rate-neutral", "0": "tl-rate-neutral",
    "3": "tl-rate-bad", "-": "tl-rate-bad", "f": "tl-first-error", "j": "tl-step-next", "k": "tl-step-prev",
    "n": "tl-next-sample",
}  # fmt: skip
KEYS_JS = """
if (!window.__tracelabAnnotateKeys) {
  window.__tracelabAnnotateKeys = true;
  const keys = __KEYS__;
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing || e.repeat) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const el = keys[e.key] && document.getElementById(keys[e.key]);
    const btn = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    if (!btn || btn.disabled || btn.offsetParent === null) return;  // hidden: another tab is showing
    e.preventDefault();
    btn.click();
  });
}
""".replace("__KEYS__", json.dumps(SHORTCUTS))
STEP_CLICK_JS = """
element.addEventListener("click", (e) => {
  const step = e.target.closest("[data-pos]");
  if (step) trigger("click", {pos: Number(step.dataset.pos)});
});
"""
SHORTCUT_HELP = (
    "<small>Keys: <b>1</b>/<b>+</b> good · <b>2</b>/<b>0</b> neutral · <b>3</b>/<b>-</b> wrong · "
    "<b>f</b> first error · <b>j</b>/<b>k</b> next/previous step · <b>n</b> next sample. "
    "Click a step to select it.</small>"
)


# --- rendering (pure: view -> HTML / table rows) -------------------------------------------------------------


def steps_html(view: labeling.SampleView, cursor: int) -> str:
    """The sample's steps with their current rating; the selected one outlined, those after a first error dimmed."""
    if not view.steps:
        return "<p>This sample has no steps.</p>"
    rows = []
    for pos, step in enumerate(view.steps):
        color, badge = RATING_STYLE[step.rating]
        border = "2px solid #2563eb" if pos == cursor else "1px solid #e5e7eb"
        dim = "opacity:.45;" if step.after_first_error else ""
        flag = " · <b style='color:#dc2626'>first error</b>" if step.first_error else ""
        note = f"<div style='color:#6b7280;font-style:italic'>{esc(step.comment)}</div>" if step.comment else ""
        rating = "" if step.rating is None else step.rating
        rows.append(
            f"<div class='tl-step' data-pos='{pos}' data-step-id='{step.step_id}' data-rating='{rating}' "
            f"style='border:{border};border-radius:6px;padding:6px 8px;margin:4px 0;cursor:pointer;{dim}'>"
            f"<span style='background:{color};color:white;border-radius:4px;padding:0 6px;font-weight:600'>"
            f"{badge}</span> <small>#{step.index} · {esc(step.source)}{flag}</small>"
            f"<div style='white-space:pre-wrap'>{esc(step.text)}</div>{note}</div>"
        )
    return "".join(rows)


def header_html(view: labeling.SampleView) -> str:
    state = "done" if view.done else f"{view.n_labelled} of {len(view.steps)} steps labelled"
    answer = esc(view.extracted_answer or "—")
    return (
        f"<div id='tl-sample' data-sample-id='{view.sample_id}'><small>Sample {view.sample_id} · run {view.run_id} "
        f"#{view.sample_index} · {esc(view.model)} · stop: {esc(view.stop_reason)} · answer: {answer} · "
        f"labelling as <b>{esc(view.annotator)}</b> · {state}</small>"
        f"<div style='white-space:pre-wrap;font-weight:600;margin:4px 0'>{esc(view.prompt)}</div></div>"
    )


def current_html(view: labeling.SampleView, cursor: int) -> str:
    if not view.steps:
        return ""
    step = view.steps[cursor]
    note = " (after the first error: PRM800K leaves it unlabelled)" if step.after_first_error else ""
    return f"<small>Step #{step.index} of {len(view.steps)}{note}</small><div style='white-space:pre-wrap'>{esc(step.text)}</div>"


def sample_html(brief: labeling.SampleBrief | None) -> str:
    if brief is None:
        return ""
    return (
        f"<small>Sample {brief.sample_id} · run {brief.run_id} #{brief.sample_index} · {esc(brief.model)}</small>"
        f"<details><summary>thinking</summary><div style='white-space:pre-wrap'>{esc(brief.thinking)}</div></details>"
        f"<div style='white-space:pre-wrap'><b>Answer:</b> {esc(brief.answer)}</div>"
    )


def queue_rows(queue: labeling.QueueView) -> list[list[Any]]:
    return [
        [
            i.sample_id,
            i.run_id,
            i.sample_index,
            i.model,
            i.prompt_excerpt,
            i.n_steps,
            i.n_labelled,
            "✓" if i.done else "",
        ]
        for i in queue.items
    ]


# --- the tab -------------------------------------------------------------------------------------------------


def build_tab(rt: Runtime) -> None:
    """Build the Annotate tab inside the caller's ``gr.Tab``; also registers the labelling API endpoints."""
    store = rt.store
    auth_on = bool(rt.settings.auth)

    def who(name: str | None, request: gr.Request | None) -> str:
        return labeling.resolve_annotator(name, getattr(request, "username", None))

    def queue_for(annotator: str, run_id: Any, model: str, prompt: str, whose: str, first: bool) -> Any:
        done_by = {"me": annotator, "anyone": None}.get(whose, whose or annotator)
        run = int(run_id) if run_id not in (None, "") and int(run_id) > 0 else None
        return labeling.label_queue(
            store, done_by, run_id=run, model=model, prompt_search=prompt, unlabelled_first=first
        )

    def render(sample_id: int | None, annotator: str, cursor: Any, filters: tuple[Any, ...]) -> tuple[Any, ...]:
        """(opened, cursor, header, steps, current step, comment, history, verdict, progress, queue)."""
        queue = queue_for(annotator, *filters)
        progress = f"**{queue.progress.text}**"
        if sample_id is None:
            return (
                None,
                0,
                "<p>Pick a sample from the queue (or press <b>n</b>).</p>",
                "",
                "",
                "",
                [],
                None,
                progress,
                queue_rows(queue),
            )
        view = labeling.open_sample(store, sample_id, annotator)
        pos = max(0, min(int(cursor or 0), len(view.steps) - 1))
        step = view.steps[pos] if view.steps else None
        history = labeling.label_history(store, step.step_id) if step else []
        table = [[h.created_at.strftime("%Y-%m-%d %H:%M:%S"), h.annotator, labeling.RATING_TEXT[h.rating], "yes" if h.first_error else "", h.comment] for h in history]  # fmt: skip
        verdict = {True: "correct", False: "incorrect", None: "no verdict"}[view.verdict]
        return (sample_id, pos, header_html(view), steps_html(view, pos), current_html(view, pos),
                step.comment if step else "", table, verdict, progress, queue_rows(queue))  # fmt: skip

    def guarded(action: Callable[[str, int | None, Any, Any], int | None]) -> Callable[..., tuple[Any, ...]]:
        """Run ``action(annotator, opened, cursor, extra)`` -> new cursor (None: keep), then re-render.

        A refused action (``StoreError``) becomes a warning and a reload, so the person sees the current steps.
        Gradio injects ``request`` by its type hint, so the signature lists every input positionally.
        """

        def handler(name, opened, cursor, extra, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
            filters = (run, model, prompt, whose, first)
            try:
                annotator = who(name, request)
            except StoreError as exc:
                raise gr.Error(str(exc)) from exc
            try:
                new_cursor = action(annotator, opened, cursor, extra)
                cursor = cursor if new_cursor is None else new_cursor
            except (StoreError, ValueError) as exc:
                gr.Warning(str(exc))
            try:
                return render(opened, annotator, cursor, filters)
            except StoreError as exc:
                raise gr.Error(str(exc)) from exc

        return handler

    # --- layout ---
    saved_name = gr.BrowserState("", storage_key="tracelab-annotator", secret="tracelab-annotator-name")
    opened = gr.State(None)
    with gr.Tabs():
        with gr.Tab("Label steps"):
            with gr.Row():
                name = gr.Textbox(label="Annotator", placeholder="your name", interactive=not auth_on, elem_id="tl-annotator", scale=1)  # fmt: skip
                progress = gr.Markdown(elem_id="tl-progress")
            with gr.Accordion("Queue", open=True):
                with gr.Row():
                    f_run = gr.Number(None, label="Run id", precision=0, minimum=0)
                    f_model = gr.Dropdown(label="Model", choices=[""], value="", allow_custom_value=True)
                    f_prompt = gr.Textbox(label="Prompt contains")
                    f_whose = gr.Dropdown(label="Done = labelled by", choices=["me", "anyone"], value="me", allow_custom_value=True)  # fmt: skip
                    f_first = gr.Checkbox(label="Unlabelled first", value=True)
                with gr.Row():
                    refresh = gr.Button("Refresh queue", size="sm")
                    pick = gr.Number(None, label="Sample id", precision=0, minimum=0)
                    open_btn = gr.Button("Open", size="sm")
                    next_btn = gr.Button("Next sample (n)", size="sm", elem_id="tl-next-sample")
                queue_df = gr.Dataframe(headers=QUEUE_HEADERS, interactive=False, max_height=260, elem_id="tl-queue")
            header = gr.HTML(js_on_load=None, elem_id="tl-header")
            with gr.Row():
                with gr.Column(scale=3):
                    steps = gr.HTML(js_on_load=STEP_CLICK_JS, elem_id="tl-steps")
                with gr.Column(scale=2):
                    cursor = gr.Number(label="Step position", precision=0, value=0, minimum=0, elem_id="tl-cursor")
                    current = gr.HTML(js_on_load=None, elem_id="tl-current")
                    comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="tl-comment")
                    with gr.Row():
                        good = gr.Button("+1 good (1)", elem_id="tl-rate-good", variant="primary")
                        neutral = gr.Button("0 neutral (2)", elem_id="tl-rate-neutral")
                        wrong = gr.Button("-1 wrong (3)", elem_id="tl-rate-bad", variant="stop")
                    first_err = gr.Button("First error here (f): -1 and stop", elem_id="tl-first-error", variant="stop")
                    with gr.Row():
                        prev = gr.Button("◀ previous (k)", elem_id="tl-step-prev", size="sm")
                        nxt = gr.Button("next (j) ▶", elem_id="tl-step-next", size="sm")
                    verdict = gr.Radio(VERDICTS, label="Whole sample", elem_id="tl-verdict")
                    with gr.Accordion("Edit steps", open=False):
                        merge_btn = gr.Button("Merge this step with the next", size="sm")
                        split_text = gr.Textbox(label="Split this step just before the text")
                        split_btn = gr.Button("Split", size="sm")
                    with gr.Accordion("History of this step", open=False):
                        history = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, elem_id="tl-history")
            with gr.Accordion("Preference: compare with another sample of the same prompt", open=False):
                other = gr.Dropdown(label="Other sample", choices=[], elem_id="tl-other")
                other_html = gr.HTML(js_on_load=None)
                reason = gr.Textbox(label="Reason (optional)")
                with gr.Row():
                    this_better = gr.Button("This sample is better", size="sm")
                    other_better = gr.Button("The other sample is better", size="sm")
                ranking = gr.Textbox(label="Or rank sample ids, best first (e.g. 3, 1, 2)")
                rank_btn = gr.Button("Record ranking", size="sm")
            gr.HTML(SHORTCUT_HELP, js_on_load=KEYS_JS)
        with gr.Tab("Agreement"):
            agreement.build_section(rt)
    annotate_api.register(rt)

    # --- events ---
    filters = [f_run, f_model, f_prompt, f_whose, f_first]
    view_out = [opened, cursor, header, steps, current, comment, history, verdict, progress, queue_df]

    def act_on(extra: gr.components.Component, action: Callable[[str, int | None, Any, Any], int | None]) -> Any:
        return dict(fn=guarded(action), inputs=[name, opened, cursor, extra, *filters], outputs=view_out, **PRIVATE)

    def selected(annotator: str, sample: int | None, pos: Any) -> labeling.StepView:
        if sample is None:
            raise labeling.LabelingError("open a sample first (pick one in the queue or press n)")
        view = labeling.open_sample(store, sample, annotator)
        if not view.steps:
            raise labeling.LabelingError(f"sample {sample} has no steps")
        return view.steps[max(0, min(int(pos or 0), len(view.steps) - 1))]

    def rate(rating: int, first_error: bool = False) -> Callable[[str, int | None, Any, Any], int | None]:
        def act(annotator: str, sample: int | None, pos: Any, note: Any) -> int | None:
            step = selected(annotator, sample, pos)
            labeling.label_step(store, sample, step.step_id, annotator, rating, comment=note or "", first_error=first_error)  # fmt: skip
            if first_error:
                return None  # PRM800K: the sample stops here
            return labeling.open_sample(store, sample, annotator).next_unlabelled(int(pos or 0))

        return act

    for button, rating in ((good, 1), (neutral, 0), (wrong, -1)):
        button.click(**act_on(comment, rate(rating)))
    first_err.click(**act_on(comment, rate(-1, first_error=True)))
    prev.click(**act_on(comment, lambda a, s, p, x: int(p or 0) - 1))
    nxt.click(**act_on(comment, lambda a, s, p, x: int(p or 0) + 1))
    cursor.submit(**act_on(comment, lambda a, s, p, x: None))
    refresh.click(**act_on(comment, lambda a, s, p, x: None))

    def click_step(
        name, opened, cursor, extra, run, model, prompt, whose, first, evt: gr.EventData, request: gr.Request
    ):  # noqa: ANN001, ANN202
        pos = getattr(evt, "pos", None)
        return guarded(lambda a, s, p, x: pos)(name, opened, cursor, extra, run, model, prompt, whose, first, request)

    steps.click(click_step, [name, opened, cursor, comment, *filters], view_out, **PRIVATE)

    def do_verdict(annotator: str, sample: int | None, pos: Any, value: Any) -> None:
        if sample is None:
            raise labeling.LabelingError("open a sample first")
        labeling.set_verdict(store, sample, annotator, None if value == "no verdict" else value)
        gr.Info(f"Verdict on sample {sample}: {value}")

    def do_merge(annotator: str, sample: int | None, pos: Any, _: Any) -> None:
        labeling.merge_steps(store, sample, selected(annotator, sample, pos).step_id)

    def do_split(annotator: str, sample: int | None, pos: Any, before: Any) -> None:
        labeling.split_step(store, sample, selected(annotator, sample, pos).step_id, before or "")

    verdict.input(**act_on(verdict, do_verdict))
    merge_btn.click(**act_on(comment, do_merge))
    split_btn.click(**act_on(split_text, do_split))

    # Opening a sample also fills the preference candidates.
    def on_open(name, sample_id, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
        filter_values = (run, model, prompt, whose, first)
        try:
            annotator = who(name, request)
            if sample_id in (None, ""):
                raise labeling.LabelingError("no more samples to label in this queue")
            view = labeling.open_sample(store, int(sample_id), annotator)
            cands = labeling.preference_candidates(store, view.sample_id)
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc
        start = view.next_unlabelled()
        choices = [(f"sample {c.sample_id} (run {c.run_id} #{c.sample_index}, {c.model}): {c.extracted_answer or '—'}", c.sample_id) for c in cands]  # fmt: skip
        return (*render(view.sample_id, annotator, start or 0, filter_values), gr.update(choices=choices, value=choices[0][1] if choices else None), sample_html(cands[0] if cands else None))  # fmt: skip

    open_out = [*view_out, other, other_html]
    open_btn.click(on_open, [name, pick, *filters], open_out, **PRIVATE)
    pick.submit(on_open, [name, pick, *filters], open_out, **PRIVATE)

    def on_next(name, sample, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
        filter_values = (run, model, prompt, whose, first)
        try:
            items = queue_for(who(name, request), *filter_values).items
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc
        item = next((i for i in items if not i.done and i.sample_id != sample), None)
        return on_open(name, item.sample_id if item else None, *filter_values, request)

    next_btn.click(on_next, [name, opened, *filters], open_out, **PRIVATE)

    def on_select(name, run, model, prompt, whose, first, evt: gr.SelectData, request: gr.Request):  # noqa: ANN001, ANN202
        row = evt.row_value or []
        return on_open(name, row[0] if row else None, run, model, prompt, whose, first, request)

    queue_df.select(on_select, [name, *filters], open_out, **PRIVATE)

    def show_other(other_id: Any, sample: int | None) -> str:
        if other_id in (None, "") or sample is None:
            return ""
        cands = labeling.preference_candidates(store, sample)
        return sample_html(next((c for c in cands if c.sample_id == int(other_id)), None))

    other.input(show_other, [other, opened], other_html, **PRIVATE)

    def prefer(this_is_better: bool) -> Callable[..., None]:
        def act(name: str, sample: int | None, other_id: Any, why: str, request: gr.Request) -> None:
            try:
                annotator = who(name, request)
                if sample is None or other_id in (None, ""):
                    raise labeling.LabelingError("open a sample and pick another sample of the same prompt first")
                pair = (sample, int(other_id)) if this_is_better else (int(other_id), sample)
                labeling.add_preference(store, *pair, annotator, why or "")
            except StoreError as exc:
                raise gr.Error(str(exc)) from exc
            gr.Info(f"Recorded: sample {pair[0]} is better than sample {pair[1]}")

        return act

    this_better.click(prefer(True), [name, opened, other, reason], None, **PRIVATE)
    other_better.click(prefer(False), [name, opened, other, reason], None, **PRIVATE)

    def rank(name: str, order: str, why: str, request: gr.Request) -> None:
        try:
            labeling.add_ranking(store, order or "", who(name, request), why or "")
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc
        gr.Info(f"Recorded ranking {order}")

    rank_btn.click(rank, [name, ranking, reason], None, **PRIVATE)

    # The name is remembered in the browser; with auth the login is the name.
    def on_load(saved, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
        filter_values = (run, model, prompt, whose, first)
        username = getattr(request, "username", None)
        annotator = username or saved or ""
        models = sorted({r.model for r in store.list_runs(limit=500)})
        whose = ["me", "anyone", *store.list_annotators()]
        if annotator:
            rendered = render(None, annotator, 0, filter_values)
        else:  # keep whatever the person is typing; the load may finish after they started
            rendered = (gr.update(),) * 2 + ("<p>Type your name above and press Enter.</p>",) + (gr.update(),) * 7
        return (annotator or gr.update(), gr.update(choices=["", *models]), gr.update(choices=whose), *rendered)

    gr.context.Context.root_block.load(on_load, [saved_name, *filters], [name, f_model, f_whose, *view_out], **PRIVATE)
    gr.on([name.blur, name.submit], lambda n: (n or "").strip(), name, saved_name, **PRIVATE)
    name.submit(**act_on(comment, lambda a, s, p, x: None))
