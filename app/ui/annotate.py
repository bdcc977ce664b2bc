"""The Annotate tab: a queue of samples, PRM800K-style step ratings with keyboard shortcuts, merge/split, a
whole-sample verdict, preferences between samples of one prompt, and (a sub-tab) inter-annotator agreement.

An adapter over ``app.services.labeling``: every callback finds the annotator (the Gradio login, else the name
typed here and remembered in the browser), calls one service function and re-renders the sample from the store,
so what two people do at once in two browsers always shows up. A label goes to the step id the person *saw*; if
someone merged or split it meanwhile the store refuses it, and the refusal becomes a ``gr.Warning`` plus a reload,
never a silent drop or a label on text nobody read. HTML comes from ``annotate_view`` (escaped); the named API
endpoints live in ``annotate_api``; this module's own events are private to the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from app.errors import StoreError
from app.services import history as history_service
from app.services import labeling
from app.services.runtime import Runtime
from app.ui import agreement, annotate_api, annotate_branch
from app.ui import annotate_view as v

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
VERDICTS = ["correct", "incorrect", "no verdict"]
Opened = dict[str, Any]  # {"sample_id", "run_id", "step_ids"}: what this browser session is looking at
Action = Callable[[str, Opened | None, int, Any], int | None]  # (annotator, opened, cursor, extra) -> new cursor


def shown_step(opened: Opened | None, cursor: int) -> tuple[int, int]:
    """(sample id, step id) of the step shown at ``cursor`` when the page was last rendered."""
    if not opened or not opened.get("step_ids"):
        raise labeling.LabelingError("open a sample first (click a row of the queue, or press n)")
    ids = opened["step_ids"]
    return opened["sample_id"], ids[max(0, min(cursor, len(ids) - 1))]


def build_tab(rt: Runtime) -> None:
    """Build the Annotate tab inside the caller's ``gr.Tab``; also registers the labelling API endpoints."""
    store = rt.db

    def who(name: str | None, request: gr.Request | None) -> str:
        try:
            return labeling.resolve_annotator(name, getattr(request, "username", None))
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc

    def queue_filters(annotator: str, run_id: Any, model: str, prompt: str, whose: str) -> tuple[str | None, dict]:
        """(whose labels count as done, the queue's filters) from the filter controls."""
        done_by = {"me": annotator, "anyone": None}.get(whose, whose or annotator)
        run = int(run_id) if run_id not in (None, "") and int(run_id) > 0 else None
        return done_by, {"run_id": run, "model": model, "prompt_search": prompt}

    def queue_for(annotator: str, run_id: Any, model: str, prompt: str, whose: str, first: bool) -> Any:
        done_by, filters = queue_filters(annotator, run_id, model, prompt, whose)
        return labeling.label_queue(store, done_by, unlabelled_first=first, **filters)

    def render(opened: Opened | None, annotator: str, cursor: Any, filters: tuple[Any, ...]) -> tuple[Any, ...]:
        """Values for ``view_out``: (opened, cursor, header, steps, current, comment, history, verdict, progress,
        queue), read fresh from the store."""
        queue = queue_for(annotator, *filters)
        progress, rows = f"**{queue.progress.text}**", v.queue_rows(queue)
        if not opened:
            return None, 0, v.PLACEHOLDER, "", "", "", [], None, progress, rows
        view = labeling.open_sample(store, opened["sample_id"], annotator, run_id=opened.get("run_id"))
        pos = max(0, min(int(cursor or 0), len(view.steps) - 1))
        step = view.steps[pos] if view.steps else None
        history = v.history_rows(labeling.label_history(store, step.step_id)) if step else []
        seen = {"sample_id": view.sample_id, "run_id": view.run_id, "step_ids": [s.step_id for s in view.steps]}
        verdict = {True: "correct", False: "incorrect", None: "no verdict"}[view.verdict]
        return (seen, pos, v.header_html(view), v.steps_html(view, pos), v.current_html(view, pos),
                step.comment if step else "", history, verdict, progress, rows)  # fmt: skip

    def guarded(action: Action) -> Callable[..., tuple[Any, ...]]:
        """An event handler running ``action`` then re-rendering; a refused action warns and reloads.

        Gradio injects ``request`` by its type hint among positional parameters, hence the explicit signature.
        """

        def handler(name, opened, cursor, extra, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
            annotator = who(name, request)
            try:
                moved = action(annotator, opened, int(cursor or 0), extra)
                cursor = cursor if moved is None else moved
            except (StoreError, ValueError) as exc:
                gr.Warning(str(exc))
            try:
                return render(opened, annotator, cursor, (run, model, prompt, whose, first))
            except StoreError as exc:
                raise gr.Error(str(exc)) from exc

        return handler

    # --- layout ---
    saved_name = gr.BrowserState("", storage_key="tracelab-annotator", secret="tracelab-annotator-name")
    opened = gr.State(None)
    with gr.Tabs():
        with gr.Tab("Label steps"):
            with gr.Row():
                name = gr.Textbox(label="Annotator", placeholder="your name", interactive=not rt.settings.auth,
                                  elem_id="tl-annotator", scale=1)  # fmt: skip
                progress = gr.Markdown(elem_id="tl-progress")
            with gr.Accordion("Queue", open=True):
                with gr.Row():
                    f_run = gr.Number(None, label="Run id (0 = any)", precision=0, minimum=0)
                    f_model = gr.Dropdown([""], value="", label="Model", allow_custom_value=True)
                    f_prompt = gr.Textbox(label="Prompt contains")
                    f_whose = gr.Dropdown(["me", "anyone"], value="me", label="Done = labelled by", allow_custom_value=True)  # fmt: skip
                    f_first = gr.Checkbox(label="Unlabelled first", value=True)
                with gr.Row():
                    refresh = gr.Button("Refresh queue", size="sm")
                    pick = gr.Number(None, label="Sample id", precision=0, minimum=0, elem_id="tl-pick")
                    open_btn = gr.Button("Open", size="sm", elem_id="tl-open")
                    next_btn = gr.Button("Next sample (n)", size="sm", elem_id="tl-next-sample")
                queue_df = gr.Dataframe(headers=v.QUEUE_HEADERS, interactive=False, max_height=260, elem_id="tl-queue")
            header = gr.HTML(js_on_load=None, elem_id="tl-header")
            with gr.Row():
                with gr.Column(scale=3):
                    steps = gr.HTML(js_on_load=v.STEP_CLICK_JS, elem_id="tl-steps")
                with gr.Column(scale=2):
                    cursor = gr.Number(0, label="Step position", precision=0, minimum=0, elem_id="tl-cursor")
                    current = gr.HTML(js_on_load=None, elem_id="tl-current")
                    comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="tl-comment")
                    with gr.Row():
                        good = gr.Button("+1 good (1)", elem_id="tl-rate-good", variant="primary")
                        neutral = gr.Button("0 neutral (2)", elem_id="tl-rate-neutral")
                        wrong = gr.Button("-1 wrong (3)", elem_id="tl-rate-bad", variant="stop")
                    first_err = gr.Button("First error here (f): -1 and stop", elem_id="tl-first-error", variant="stop")
                    suggestion, accept = annotate_branch.build_suggestion(rt)
                    with gr.Row():
                        prev = gr.Button("◀ previous (k)", elem_id="tl-step-prev", size="sm")
                        nxt = gr.Button("next (j) ▶", elem_id="tl-step-next", size="sm")
                    verdict = gr.Radio(VERDICTS, label="Whole sample", elem_id="tl-verdict")
                    with gr.Accordion("Edit steps", open=False):
                        merge_btn = gr.Button("Merge this step with the next", size="sm", elem_id="tl-merge")
                        split_text = gr.Textbox(label="Split this step just before the text", elem_id="tl-split-text")
                        split_btn = gr.Button("Split", size="sm", elem_id="tl-split")
                    with gr.Accordion("History of this step", open=False):
                        history = gr.Dataframe(headers=v.HISTORY_HEADERS, interactive=False, elem_id="tl-history")
            with gr.Accordion("Branch, step credit and auto labels (rollouts)", open=False, elem_id="tl-branching"):
                annotate_branch.build_section(rt, opened, cursor, suggestion)
            with gr.Accordion("Preference: compare with another sample of the same prompt", open=False):
                other = gr.Dropdown([], label="Other sample", elem_id="tl-other")
                other_html = gr.HTML(js_on_load=None)
                reason = gr.Textbox(label="Reason (optional)")
                with gr.Row():
                    this_better = gr.Button("This sample is better", size="sm", elem_id="tl-this-better")
                    other_better = gr.Button("The other sample is better", size="sm", elem_id="tl-other-better")
                ranking = gr.Textbox(label="Or rank sample ids, best first (e.g. 3, 1, 2)")
                rank_btn = gr.Button("Record ranking", size="sm")
            gr.HTML(v.SHORTCUT_HELP, js_on_load=v.KEYS_JS)
        with gr.Tab("Agreement"):
            agreement.build_section(rt)
    annotate_api.register(rt)

    # --- labelling events: (annotator, opened, cursor, extra) -> new cursor, then a fresh render ---
    filters = [f_run, f_model, f_prompt, f_whose, f_first]
    view_out = [opened, cursor, header, steps, current, comment, history, verdict, progress, queue_df]

    def on(trigger: Any, action: Action, extra: Any = comment) -> None:
        trigger(guarded(action), [name, opened, cursor, extra, *filters], view_out, **PRIVATE)

    def rate(rating: int, first_error: bool = False) -> Action:
        def act(annotator: str, seen: Opened | None, pos: int, note: Any) -> int | None:
            sample_id, step_id = shown_step(seen, pos)
            labeling.label_step(store, sample_id, step_id, annotator, rating, comment=note or "", first_error=first_error)  # fmt: skip
            if first_error:
                return None  # PRM800K: the sample stops here
            return labeling.open_sample(store, sample_id, annotator, run_id=seen["run_id"]).next_unlabelled(pos)

        return act

    def do_verdict(annotator: str, seen: Opened | None, pos: int, value: Any) -> None:
        sample_id, _ = shown_step(seen, pos)
        labeling.set_verdict(store, sample_id, annotator, None if value == "no verdict" else value)
        gr.Info(f"Sample {sample_id}: {value}")

    def do_merge(annotator: str, seen: Opened | None, pos: int, _: Any) -> None:
        labeling.merge_steps(store, *shown_step(seen, pos))

    def do_split(annotator: str, seen: Opened | None, pos: int, before: Any) -> None:
        labeling.split_step(store, *shown_step(seen, pos), before or "")

    for button, rating in ((good, 1), (neutral, 0), (wrong, -1)):
        on(button.click, rate(rating))
    on(first_err.click, rate(-1, first_error=True))
    on(accept.click, annotate_branch.accept_action(rt))
    gr.on([steps.change, cursor.change], lambda o, c: annotate_branch.suggestion_html(rt, o, c), [opened, cursor],
          suggestion, **PRIVATE)  # fmt: skip
    on(prev.click, lambda a, s, p, x: p - 1)
    on(nxt.click, lambda a, s, p, x: p + 1)
    on(cursor.submit, lambda a, s, p, x: None)
    on(refresh.click, lambda a, s, p, x: None)
    on(name.submit, lambda a, s, p, x: None)
    on(verdict.input, do_verdict, verdict)
    on(merge_btn.click, do_merge)
    on(split_btn.click, do_split, split_text)

    def click_step(
        name, opened, cursor, extra, run, model, prompt, whose, first, evt: gr.EventData, request: gr.Request
    ):  # noqa: ANN001, ANN202, E501
        pos = getattr(evt, "pos", None)
        return guarded(lambda a, s, p, x: pos)(name, opened, cursor, extra, run, model, prompt, whose, first, request)

    steps.click(click_step, [name, opened, cursor, comment, *filters], view_out, **PRIVATE)

    # --- opening a sample (by id, queue row, or "next"): also fills the preference candidates ---
    open_out = [*view_out, other, other_html]

    def on_open(name, sample_id, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
        annotator = who(name, request)
        try:
            if sample_id in (None, ""):
                raise labeling.LabelingError("no sample to open: every sample in this queue is labelled")
            view = labeling.open_sample(store, int(sample_id), annotator)
            briefs = labeling.preference_candidates(store, view.sample_id)
            seen = {"sample_id": view.sample_id, "run_id": view.run_id, "step_ids": []}
            rendered = render(seen, annotator, view.next_unlabelled() or 0, (run, model, prompt, whose, first))
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc
        choices = v.candidate_choices(briefs)
        pick_other = gr.update(choices=choices, value=choices[0][1] if choices else None)
        return (*rendered, pick_other, v.sample_html(briefs[0] if briefs else None))

    def on_next(name, seen, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
        done_by, filters = queue_filters(who(name, request), run, model, prompt, whose)
        next_id = labeling.next_sample(store, done_by, skip=(seen or {}).get("sample_id"), **filters)
        return on_open(name, next_id, run, model, prompt, whose, first, request)

    def on_select(name, run, model, prompt, whose, first, evt: gr.SelectData, request: gr.Request):  # noqa: ANN001, ANN202
        row = evt.row_value or []
        return on_open(name, row[0] if row else None, run, model, prompt, whose, first, request)

    open_btn.click(on_open, [name, pick, *filters], open_out, **PRIVATE)
    pick.submit(on_open, [name, pick, *filters], open_out, **PRIVATE)
    next_btn.click(on_next, [name, opened, *filters], open_out, **PRIVATE)
    queue_df.select(on_select, [name, *filters], open_out, **PRIVATE)

    # --- preferences ---
    def show_other(other_id: Any, seen: Opened | None) -> str:
        if other_id in (None, "") or not seen:
            return ""
        briefs = labeling.preference_candidates(store, seen["sample_id"])
        return v.sample_html(next((b for b in briefs if b.sample_id == int(other_id)), None))

    def prefer(this_is_better: bool) -> Callable[..., None]:
        def act(name: str, seen: Opened | None, other_id: Any, why: str, request: gr.Request) -> None:
            annotator = who(name, request)
            if not seen or other_id in (None, ""):
                raise gr.Error("open a sample and pick another sample of the same prompt first")
            pair = (seen["sample_id"], int(other_id))
            chosen, rejected = pair if this_is_better else pair[::-1]
            try:
                labeling.add_preference(store, chosen, rejected, annotator, why or "")
            except StoreError as exc:
                raise gr.Error(str(exc)) from exc
            gr.Info(f"Recorded: sample {chosen} is better than sample {rejected}")

        return act

    def rank(name: str, order: str, why: str, request: gr.Request) -> None:
        try:
            labeling.add_ranking(store, order or "", who(name, request), why or "")
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc
        gr.Info(f"Recorded the ranking {order} (best first)")

    other.input(show_other, [other, opened], other_html, **PRIVATE)
    this_better.click(prefer(True), [name, opened, other, reason], None, **PRIVATE)
    other_better.click(prefer(False), [name, opened, other, reason], None, **PRIVATE)
    rank_btn.click(rank, [name, ranking, reason], None, **PRIVATE)

    # --- page load: the login, else the remembered name; fresh filter choices ---
    def on_load(saved, run, model, prompt, whose, first, request: gr.Request):  # noqa: ANN001, ANN202
        annotator = getattr(request, "username", None) or (saved or "").strip()
        models = history_service.model_names(store)
        choices = (
            gr.update(choices=["", *models]),
            gr.update(choices=["me", "anyone", *history_service.annotator_names(store)]),
        )
        if not annotator:  # leave the name box alone: the person may already be typing
            return (gr.update(), *choices, gr.update(), gr.update(), v.NO_NAME, *(gr.update(),) * 7)
        return (annotator, *choices, *render(None, annotator, 0, (run, model, prompt, whose, first)))

    gr.context.Context.root_block.load(on_load, [saved_name, *filters], [name, f_model, f_whose, *view_out], **PRIVATE)
    gr.on([name.blur, name.submit], lambda n: (n or "").strip(), name, saved_name, **PRIVATE)
