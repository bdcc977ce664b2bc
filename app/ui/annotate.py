"""The Annotate tab: a queue of samples, PRM800K-style step ratings with keyboard shortcuts, merge/split, a
whole-sample verdict, preferences between samples of one prompt, and (a sub-tab) inter-annotator agreement.

An adapter over ``app.services.labeling``: every handler of :class:`Annotate` finds the annotator (the Gradio
login, else the name typed here and remembered in the browser), calls one service function and re-renders the
sample from the store (:class:`View`), so what two people do at once in two browsers always shows up. Ratings
and step moves (keys, buttons, clicks) happen in the page at once and their saves are queued there, each tied to
the step id it was pressed on (``annotate_keys``, over the ``save_label`` endpoint); if someone merged or split
that step meanwhile the store refuses it, and the page shows the refusal on the step and reloads, never a silent
drop or a label on text nobody read. HTML comes
from ``annotate_view`` (escaped); the named API endpoints live in ``annotate_api``; this module's own events are
private to the page. The page-load hook (the remembered name, fresh filter menus) is handed to ``build_demo``,
which registers it with the public ``demo.load``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any

import gradio as gr

from app.errors import StoreError
from app.services import history, labeling
from app.services.runtime import Runtime
from app.ui import agreement, annotate_api, annotate_branch, annotate_prefs
from app.ui import annotate_keys as keys
from app.ui import annotate_view as v
from app.ui.caller import login_of
from app.ui.fields import WholeNumber
from app.ui.page import OnLoad
from app.ui.refusal import refusal

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
VERDICTS = ["correct", "incorrect", "no verdict"]
Opened = dict[str, Any]  # {"sample_id", "run_id", "step_ids"}: what this browser session is looking at
Action = Callable[[str, Opened | None, int, Any], int | None]  # (annotator, opened, cursor, extra) -> new cursor
KEEP = gr.update  # an output left as it is


def shown_step(opened: Opened | None, cursor: int) -> tuple[int, int]:
    """(sample id, step id) of the step shown at ``cursor`` when the page was last rendered."""
    if not opened or not opened.get("step_ids"):
        raise labeling.LabelingError("open a sample first (click a row of the queue, or press n)")
    ids = opened["step_ids"]
    return opened["sample_id"], ids[max(0, min(cursor, len(ids) - 1))]


@dataclass(frozen=True)
class Filters:
    """The queue's filter controls: run id (0/blank = any), model, prompt text, whose labels count, order."""

    run: float | None = None
    model: str = ""
    prompt: str = ""
    whose: str = "me"
    first: bool = True

    def query(self, annotator: str) -> tuple[str | None, dict[str, Any]]:
        """(whose labels count as done, the queue's filters) for ``annotator``."""
        done_by = {"me": annotator, "anyone": None}.get(self.whose, self.whose or annotator)
        run = int(self.run) if self.run not in (None, "") and int(self.run) > 0 else None
        return done_by, {"run_id": run, "model": self.model, "prompt_search": self.prompt}


@dataclass(frozen=True)
class View:
    """What a re-render puts on the page, in the order of the tab's ``view_out`` components."""

    opened: Any = None  # Opened | None, or KEEP()
    cursor: Any = 0
    header: Any = v.PLACEHOLDER
    steps: Any = ""
    current: Any = ""
    comment: Any = ""
    history: Any = ()
    verdict: Any = None
    progress: Any = ""
    queue: Any = ()

    def outputs(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def keep(cls, **changes: Any) -> View:
        """Every output left as it is, except ``changes``."""
        return cls(**{f.name: KEEP() for f in fields(cls)} | changes)


class Annotate:
    """The tab's handlers over one :class:`Runtime`'s store; methods are wired as (private) Gradio events."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = rt.db
        self.prefs = annotate_prefs.Preferences(rt)

    @staticmethod
    def who(name: str | None, request: gr.Request | None) -> str:
        try:
            return labeling.resolve_annotator(name, login_of(request))
        except StoreError as exc:
            raise refusal(str(exc)) from exc

    def render(self, opened: Opened | None, annotator: str, cursor: Any, filters: Filters) -> View:
        """The sample ``opened`` shows (or the placeholder) and the queue, read fresh from the store."""
        done_by, query = filters.query(annotator)
        queue = labeling.label_queue(self.store, done_by, unlabelled_first=filters.first, **query)
        progress, rows = f"**{queue.progress.text}**", v.queue_rows(queue)
        if not opened:
            return View(None, 0, v.PLACEHOLDER, "", "", "", [], None, progress, rows)
        view = labeling.open_sample(self.store, opened["sample_id"], annotator, run_id=opened.get("run_id"))
        pos = max(0, min(int(cursor or 0), len(view.steps) - 1))
        step = view.steps[pos] if view.steps else None
        steps_history = v.history_rows(labeling.label_history(self.store, step.step_id)) if step else []
        seen = {"sample_id": view.sample_id, "run_id": view.run_id, "step_ids": [s.step_id for s in view.steps]}
        verdict = {True: "correct", False: "incorrect", None: "no verdict"}[view.verdict]
        return View(seen, pos, v.header_html(view), v.steps_html(view, pos), v.current_html(view, pos),
                    step.comment if step else "", steps_history, verdict, progress, rows)  # fmt: skip

    def apply(
        self, action: Action, name: str, opened: Opened | None, cursor: Any, extra: Any, filters: Filters,
        request: gr.Request | None,
    ) -> tuple[Any, ...]:  # fmt: skip
        """Run ``action`` then re-render; a refused action warns and reloads (nothing is dropped silently)."""
        annotator = self.who(name, request)
        try:
            moved = action(annotator, opened, int(cursor or 0), extra)
            cursor = cursor if moved is None else moved
        except (StoreError, ValueError) as exc:
            gr.Warning(str(exc))
        try:
            return self.render(opened, annotator, cursor, filters).outputs()
        except StoreError as exc:
            raise refusal(str(exc)) from exc

    def handler(self, action: Action) -> Callable[..., tuple[Any, ...]]:
        """An event handler over ``[name, opened, cursor, extra, *filters]`` running ``action``.

        Gradio injects ``request`` by its type hint among positional parameters, hence the explicit signature.
        """

        def handle(
            name: str, opened: Opened | None, cursor: float | None, extra: Any, run: float | None, model: str,
            prompt: str, whose: str, first: bool, request: gr.Request,
        ) -> tuple[Any, ...]:  # fmt: skip
            return self.apply(action, name, opened, cursor, extra, Filters(run, model, prompt, whose, first), request)

        return handle

    def click_step(
        self, name: str, opened: Opened | None, cursor: float | None, extra: Any, run: float | None, model: str,
        prompt: str, whose: str, first: bool, evt: gr.EventData, request: gr.Request,
    ) -> tuple[Any, ...]:  # fmt: skip
        """A click on a step in the list selects it (the page's script sends its position)."""
        pos = getattr(evt, "pos", None)
        filters = Filters(run, model, prompt, whose, first)
        return self.apply(lambda a, s, p, x: pos, name, opened, cursor, extra, filters, request)

    # --- actions: (annotator, opened, cursor, extra) -> new cursor (None = stay); ratings are in the page ---

    def set_verdict(self, annotator: str, seen: Opened | None, pos: int, value: Any) -> None:
        sample_id, _ = shown_step(seen, pos)
        labeling.set_verdict(self.store, sample_id, annotator, None if value == "no verdict" else value)
        gr.Info(f"Sample {sample_id}: {value}")

    def merge(self, annotator: str, seen: Opened | None, pos: int, _: Any) -> None:
        labeling.merge_steps(self.store, *shown_step(seen, pos))
        gr.Info(f"Merged step #{pos} with the next. The merged step starts unlabelled: rate it again "
                "(the two steps' labels are kept in the history and no longer export).")  # fmt: skip

    def split(self, annotator: str, seen: Opened | None, pos: int, before: Any) -> None:
        labeling.split_step(self.store, *shown_step(seen, pos), before or "")
        gr.Info(f"Split step #{pos} in two. Both parts start unlabelled: rate them again "
                "(the step's labels are kept in the history and no longer export).")  # fmt: skip

    # --- opening a sample (by id, queue row, or "next"): also fills the preference candidates ---

    def open(
        self, name: str, sample_id: Any, run: float | None, model: str, prompt: str, whose: str, first: bool,
        request: gr.Request,
    ) -> tuple[Any, ...]:  # fmt: skip
        annotator = self.who(name, request)
        try:
            if sample_id in (None, ""):
                raise labeling.LabelingError("no sample to open: every sample in this queue is labelled")
            view = labeling.open_sample(self.store, int(sample_id), annotator)
            seen = {"sample_id": view.sample_id, "run_id": view.run_id, "step_ids": []}
            rendered = self.render(
                seen, annotator, view.next_unlabelled() or 0, Filters(run, model, prompt, whose, first)
            )
        except StoreError as exc:
            raise refusal(str(exc)) from exc
        return (*rendered.outputs(), *self.prefs.opened(view.sample_id))

    def next(
        self, name: str, seen: Opened | None, run: float | None, model: str, prompt: str, whose: str, first: bool,
        request: gr.Request,
    ) -> tuple[Any, ...]:  # fmt: skip
        done_by, query = Filters(run, model, prompt, whose, first).query(self.who(name, request))
        next_id = labeling.next_sample(self.store, done_by, skip=(seen or {}).get("sample_id"), **query)
        return self.open(name, next_id, run, model, prompt, whose, first, request)

    def select(
        self, name: str, run: float | None, model: str, prompt: str, whose: str, first: bool, evt: gr.SelectData,
        request: gr.Request,
    ) -> tuple[Any, ...]:  # fmt: skip
        row = evt.row_value or []
        return self.open(name, row[0] if row else None, run, model, prompt, whose, first, request)

    # --- preferences (A vs B side by side: annotate_prefs) and rankings ---

    def rank(self, name: str, order: str, why: str, request: gr.Request) -> None:
        try:
            labeling.add_ranking(self.store, order or "", self.who(name, request), why or "")
        except StoreError as exc:
            raise refusal(str(exc)) from exc
        gr.Info(f"Recorded the ranking {order} (best first)")

    # --- page load: the login, else the remembered name; fresh filter choices ---

    def on_load(
        self, saved: str | None, run: float | None, model: str, prompt: str, whose: str, first: bool,
        request: gr.Request,
    ) -> tuple[Any, ...]:  # fmt: skip
        annotator = login_of(request) or (saved or "").strip()
        menus = (
            gr.update(choices=["", *history.model_names(self.store)]),
            gr.update(choices=["me", "anyone", *history.annotator_names(self.store)]),
        )
        if not annotator:  # leave the name box alone: the person may already be typing
            return (KEEP(), *menus, *View.keep(header=v.NO_NAME).outputs())
        return (
            annotator,
            *menus,
            *self.render(None, annotator, 0, Filters(run, model, prompt, whose, first)).outputs(),
        )


def build_tab(rt: Runtime) -> list[OnLoad]:
    """Build the Annotate tab inside the caller's ``gr.Tab``; also registers the labelling API endpoints.
    Returns the page-load hook for ``build_demo`` to register."""
    tab = Annotate(rt)
    saved_name = gr.BrowserState("", storage_key="tracelab-annotator", secret="tracelab-annotator-name")
    opened = gr.State(None)
    with gr.Tabs():
        with gr.Tab("Label steps"):
            c = _label_steps(rt, opened)
        with gr.Tab("Agreement"):
            agreement.build_section(rt)
    annotate_api.register(rt)
    filters = [c.f_run, c.f_model, c.f_prompt, c.f_whose, c.f_first]
    # outputs in View's field order
    view_out = [opened, c.cursor, c.header, c.steps, c.current, c.comment, c.step_history, c.verdict, c.progress,
                c.queue_df]  # fmt: skip
    _wire_labelling(tab, rt, c, opened, filters, view_out)
    _wire_opening(tab, c, opened, filters, view_out)
    gr.on([c.name.blur, c.name.submit], lambda n: (n or "").strip(), c.name, saved_name, **PRIVATE)
    return [OnLoad(tab.on_load, [saved_name, *filters], [c.name, c.f_model, c.f_whose, *view_out])]


def _label_steps(rt: Runtime, opened: gr.State) -> SimpleNamespace:
    """The "Label steps" sub-tab's layout; its components by name (every local below)."""
    with gr.Row():
        name = gr.Textbox(label="Annotator", placeholder="your name", interactive=not rt.settings.auth,
                          elem_id="tl-annotator", scale=1)  # fmt: skip
        progress = gr.Markdown(elem_id="tl-progress")
    with gr.Accordion("Queue", open=True):
        with gr.Row():
            f_run = WholeNumber(None, label="Run id (0 = any)", minimum=0)
            f_model = gr.Dropdown([""], value="", label="Model", allow_custom_value=True)
            f_prompt = gr.Textbox(label="Prompt contains")
            f_whose = gr.Dropdown(["me", "anyone"], value="me", label="Done = labelled by", allow_custom_value=True)  # fmt: skip
            f_first = gr.Checkbox(label="Unlabelled first", value=True)
        with gr.Row():
            refresh = gr.Button("Refresh queue", size="sm")
            pick = WholeNumber(None, label="Sample id", minimum=0, elem_id="tl-pick")
            open_btn = gr.Button("Open", size="sm", elem_id="tl-open")
            next_btn = gr.Button("Next sample (n)", size="sm", elem_id="tl-next-sample")
        queue_df = gr.Dataframe(headers=v.QUEUE_HEADERS, interactive=False, max_height=260, elem_id="tl-queue")
    header = gr.HTML(js_on_load=None, elem_id="tl-header")
    with gr.Row():
        with gr.Column(scale=3):
            gr.HTML(keys.STATUS_HTML, js_on_load=None, elem_id="tl-save-box")
            steps = gr.HTML(js_on_load=keys.STEPS_JS, elem_id="tl-steps")
        with gr.Column(scale=2):
            cursor = WholeNumber(0, label="Step position", minimum=0, elem_id="tl-cursor")
            current = gr.HTML(js_on_load=None, elem_id="tl-current")
            comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="tl-comment")
            with gr.Row():
                good = gr.Button(annotate_branch.GOOD_TEXT, elem_id="tl-rate-good", variant="primary")
                neutral = gr.Button("0 neutral (2)", elem_id="tl-rate-neutral")
                wrong = gr.Button(annotate_branch.WRONG_TEXT, elem_id="tl-rate-bad", variant="stop")
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
                step_history = gr.Dataframe(headers=v.HISTORY_HEADERS, interactive=False, elem_id="tl-history")
    with gr.Accordion("Branch, step credit and auto labels (rollouts)", open=False, elem_id="tl-branching"):
        annotate_branch.build_section(rt, opened, cursor, suggestion, (good, wrong))
    with gr.Accordion("Preference: this sample (A) vs another of the same prompt (B)", open=False,
                      elem_id="tl-preference"):  # fmt: skip
        pref = annotate_prefs.build(rt, opened, name)
        ranking = gr.Textbox(label="Or rank sample ids, best first (e.g. 3, 1, 2)")
        rank_btn = gr.Button("Record ranking", size="sm")
    gr.HTML(v.SHORTCUT_HELP + annotate_branch.SUGGESTION_STYLE,
            js_on_load=keys.labels_js(v.RATING_STYLE) + annotate_prefs.KEYS_JS)  # fmt: skip
    return SimpleNamespace(**{k: c for k, c in locals().items() if k not in ("rt", "opened")})


def _wire_labelling(
    tab: Annotate, rt: Runtime, c: SimpleNamespace, opened: gr.State, filters: list[Any], view_out: list[Any]
) -> None:
    """The labelling events: an action on the step shown, then a fresh render."""

    def on(trigger: Any, action: Action, extra: Any = c.comment) -> None:
        trigger(tab.handler(action), [c.name, opened, c.cursor, extra, *filters], view_out, **PRIVATE)

    # Ratings and moves happen in the page at once; their saves are queued there (annotate_keys).
    for button, rating in ((c.good, 1), (c.neutral, 0), (c.wrong, -1)):
        button.click(None, js=keys.rate_js(rating), **PRIVATE)
    c.first_err.click(None, js=keys.rate_js(-1, first_error=True), **PRIVATE)
    c.prev.click(None, js=keys.move_js(-1), **PRIVATE)
    c.nxt.click(None, js=keys.move_js(1), **PRIVATE)
    on(c.accept.click, annotate_branch.accept_action(rt))
    gr.on([c.steps.change, c.cursor.change], lambda o, p: annotate_branch.suggestion_view(rt, o, p),
          [opened, c.cursor], [c.suggestion, c.good, c.wrong], **PRIVATE)  # fmt: skip
    for stay in (c.cursor.submit, c.refresh.click, c.name.submit):
        on(stay, lambda a, s, p, x: None)
    on(c.verdict.input, tab.set_verdict, c.verdict)
    on(c.merge_btn.click, tab.merge)
    on(c.split_btn.click, tab.split, c.split_text)
    c.steps.click(tab.click_step, [c.name, opened, c.cursor, c.comment, *filters], view_out,
                  trigger_mode="always_last", **PRIVATE)  # fmt: skip


def _wire_opening(tab: Annotate, c: SimpleNamespace, opened: gr.State, filters: list[Any], view_out: list[Any]) -> None:
    """Opening a sample (by id, queue row or "next") and the preference between two samples."""
    open_out = [*view_out, c.pref.other, c.pref.side_a, c.pref.side_b]
    c.open_btn.click(tab.open, [c.name, c.pick, *filters], open_out, **PRIVATE)
    c.pick.submit(tab.open, [c.name, c.pick, *filters], open_out, **PRIVATE)
    c.next_btn.click(tab.next, [c.name, opened, *filters], open_out, **PRIVATE)
    c.queue_df.select(tab.select, [c.name, *filters], open_out, **PRIVATE)
    c.rank_btn.click(tab.rank, [c.name, c.ranking, c.pref.reason], None, **PRIVATE)
