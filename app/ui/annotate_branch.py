"""The Annotate tab's rollout tools: "Branch here" from the current step, the step-credit curve, "Auto-label
this sample", and the auto-label suggestion that pre-fills the rating buttons (a click confirms or overrides).

A suggestion is never shown as a person's label: the suggested button gets a dashed outline (class
:data:`SUGGESTED`) and the caption "suggested (auto:mc, share 0.75)", the step list keeps showing only people's
ratings, and the suggestion is stored as a label only when the person clicks a rating or Accept (as themselves).

A part of the Annotate tab (``annotate.build_tab`` places these sections). Long runs go through
:class:`app.ui.running.ModelTab` (progress, Cancel, one generation at a time); the work is
``app.services.branching`` and ``app.services.auto_labels``. Model text is escaped; the plot is plotly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from app.errors import InvalidInput, UserError
from app.services import auto_labels, branching, labeling
from app.services.runtime import Runtime
from app.ui.branch_here import BUDGET_LABEL, budget_of
from app.ui.caller import user_of
from app.ui.charts import credit_figure
from app.ui.control_values import as_int
from app.ui.fields import WholeNumber
from app.ui.render import html_text, status_html
from app.ui.running import MODEL_QUEUE, PREPARE, ModelTab, Work

CREDIT_HELP = (
    "**How the curve is computed.** For each step *k*, N rollouts continue the trace from the end of step *k* "
    "under the run's budget rules (the thinking already written counts against the budget). "
    "**share(k)** = the fraction that reach the target: the gold answer if you give one, else the majority answer "
    "of all the rollouts. **Importance(k) = share(k) − share(k−1)**: the share with step *k* kept minus the share "
    "with step *k* resampled in its place (rollouts from the end of step *k−1* rewrite step *k* and everything "
    "after; step 0 on the plot is the prompt alone). **Anchors** (◆) are the up to three steps with the largest "
    "|importance|. **Auto-label** stores, per step, soft = share(k) and hard = any rollout reached the target "
    "(Math-Shepherd), as suggestions marked `auto:mc`, never as a person's label."
)


#: The rating buttons' words (``annotate.build_tab`` makes the buttons with them) and the class of a suggested one.
GOOD_TEXT, WRONG_TEXT = "+1 good (1)", "-1 wrong (3)"
SUGGESTED = "tl-suggested"
#: The page style of a suggested button (placed once in the tab, with the shortcut help).
SUGGESTION_STYLE = f"<style>.{SUGGESTED} {{ outline: 2px dashed #7c3aed !important; outline-offset: 2px; }}</style>"


def _where(rt: Runtime, opened: dict | None, cursor: Any) -> tuple[int, int, int]:
    """(run id, sample index, step position) of the step on screen; a clear error when nothing is open."""
    if not opened or not opened.get("step_ids"):
        raise InvalidInput("open a sample first (click a row of the queue, or press n)")
    pos = max(0, min(int(cursor or 0), len(opened["step_ids"]) - 1))
    run_id, sample_index = branching.sample_address(rt, opened["sample_id"])
    return run_id, sample_index, pos


def _suggestion(rt: Runtime, opened: dict | None, cursor: Any):  # noqa: ANN202 - AutoLabelRecord | None
    """The auto label of the step on screen, or None."""
    if not opened or not opened.get("step_ids"):
        return None
    ids = opened["step_ids"]
    step_id = ids[max(0, min(int(cursor or 0), len(ids) - 1))]
    return auto_labels.suggestions(rt.db, opened["sample_id"]).get(step_id)


def suggestion_view(rt: Runtime, opened: dict | None, cursor: Any) -> tuple[str, gr.Button, gr.Button]:
    """The suggestion line and the two rating buttons, the suggested one marked (dashed outline + caption)."""
    label = _suggestion(rt, opened, cursor)
    marked = None if label is None else ("good" if label.hard else "wrong")
    caption = "" if label is None else f" · suggested ({label.source}, share {label.soft:.2f})"

    def button(which: str, text: str) -> gr.Button:
        on = marked == which
        return gr.Button(value=text + (caption if on else ""), elem_classes=[SUGGESTED] if on else [])

    return suggestion_html(rt, opened, cursor), button("good", GOOD_TEXT), button("wrong", WRONG_TEXT)


def suggestion_html(rt: Runtime, opened: dict | None, cursor: Any) -> str:
    """The current step's auto label as a suggestion, or a hint how to get one."""
    if not opened or not opened.get("step_ids"):
        return ""
    label = _suggestion(rt, opened, cursor)
    if label is None:
        return "<div id='tl-suggestion-box' class='tl-muted'>No auto label for this step (Auto-label this sample below).</div>"
    word, colour = ("+1 good", "#16a34a") if label.hard else ("-1 wrong", "#dc2626")
    reached = round(label.soft * label.rollouts)
    return (
        f"<div id='tl-suggestion-box' data-hard='{int(label.hard)}'>Suggestion "
        f"(<code>{html_text(label.source)}</code>, not a person's): <b style='color:{colour}'>{word}</b> · "
        f"{reached} of {label.rollouts} rollouts reached {html_text(label.target or '')} ({label.target_kind}). "
        "Accept it, or click a rating to override.</div>"
    )


def accept_action(rt: Runtime):  # noqa: ANN201 - an annotate.Action
    """Label the step on screen with its suggestion (+1 if the hard auto label is good, else -1), as the person."""

    def act(annotator: str, seen: dict | None, pos: int, _: Any) -> int | None:
        if not seen or not seen.get("step_ids"):
            raise labeling.LabelingError("open a sample first (click a row of the queue, or press n)")
        step_id = seen["step_ids"][max(0, min(pos, len(seen["step_ids"]) - 1))]
        label = auto_labels.suggestions(rt.db, seen["sample_id"]).get(step_id)
        if label is None:
            raise labeling.LabelingError("this step has no auto label to accept; run Auto-label this sample first")
        labeling.label_step(rt.db, seen["sample_id"], step_id, annotator, 1 if label.hard else -1)
        return labeling.open_sample(rt.db, seen["sample_id"], annotator, run_id=seen["run_id"]).next_unlabelled(pos)

    return act


class BranchPanel(ModelTab):
    tab = "annotate-branch"
    idle_message = "No rollouts are running in this session."

    def _plan(
        self, opened: dict | None, cursor: Any, n: Any, gold: str, request: gr.Request, service: Callable[..., Any],
        **options: Any,
    ) -> Callable[[], Work[Any]]:  # fmt: skip
        """The plan of a rollout service over the opened sample: ``service(rt, run, sample, [step,] k, ...)``,
        from the step at ``cursor`` (None: the whole sample)."""

        def plan() -> Work[Any]:
            run_id, sample, pos = _where(self.rt, opened, 0 if cursor is None else cursor)
            where = (run_id, sample) if cursor is None else (run_id, sample, pos)
            k = as_int(n, "rollouts", 4) or 4
            who = user_of(request)
            return lambda token, report: service(
                self.rt, *where, k, gold=gold or None, cancel=token, progress=report, user=who, **options
            )

        return plan

    def branch_here(
        self, opened: dict | None, cursor: Any, n: Any, gold: str, budget: Any, request: gr.Request
    ) -> Iterator[Any]:
        plan = self._plan(opened, cursor, n, gold, request, branching.resample, budget=budget_of(budget))

        def finish(report) -> tuple[str]:  # noqa: ANN001 - only rollouts that finished an answer are counted
            return (f"<div id='tl-branch-result'>Saved as run #{report.run_id} (a branch), from the end of this "
                    f"step: {html_text(report.vote_text())}.</div>",)  # fmt: skip

        yield from self.stream_task(
            request,
            plan,
            show=lambda text: (status_html(text),),
            describe=lambda item, s: f"Rolling out… {getattr(item, 'tokens', 0)} tokens · {s:.1f} s",
            finish=finish,
        )

    def cost(self, opened: dict | None, cursor: Any, n: Any, budget: Any) -> str:
        """What Branch here from the step on screen will cost, before it starts ("" with nothing open)."""
        if not opened or not opened.get("step_ids"):
            return ""
        try:
            run_id, sample, pos = _where(self.rt, opened, cursor)
            source = branching.load_source(self.rt, run_id, sample)
            text = branching.plan_rollouts(source, pos, as_int(n, "rollouts", 4) or 4, budget_of(budget)).text
        except (UserError, ValueError) as exc:
            return f"<div id='tl-branch-cost' class='tl-muted'>{html_text(str(exc))}</div>"
        return f"<div id='tl-branch-cost'>Branch here cost: {html_text(text)}.</div>"

    def credit(self, opened: dict | None, n: Any, gold: str, request: gr.Request) -> Iterator[Any]:
        plan = self._plan(opened, None, n, gold, request, branching.step_credit)

        def finish(report) -> tuple[Any, ...]:  # noqa: ANN001
            data = report.to_json()
            note = "" if report.status == "done" else f" ({report.status}: showing the steps that finished)"
            return status_html(f"Step credit of {len(data['steps'])} steps{note}."), credit_figure(data), data

        yield from self.stream_task(
            request,
            plan,
            show=lambda text: (status_html(text), gr.update(), gr.update()),
            describe=lambda item, s: (
                f"Rolled out {item.done} of {item.total} points · {item.tokens} tokens · {s:.1f} s"
                if item
                else f"Starting… {s:.1f} s"
            ),  # fmt: skip
            finish=finish,
        )

    def autolabel(self, opened: dict | None, cursor: Any, n: Any, gold: str, request: gr.Request) -> Iterator[Any]:
        plan = self._plan(opened, None, n, gold, request, auto_labels.autolabel_sample)

        yield from self.stream_task(
            request,
            plan,
            show=lambda text: (status_html(text), gr.update(), gr.update(), gr.update()),
            describe=lambda item, s: (
                f"Auto-labelling: {item.done} of {item.total} steps · {s:.1f} s" if item else f"Starting… {s:.1f} s"
            ),  # fmt: skip
            finish=lambda report: (status_html(report.message), *suggestion_view(self.rt, opened, cursor)),
        )


def build_suggestion(rt: Runtime) -> tuple[gr.HTML, gr.Button]:
    """The suggestion line and its Accept button, placed under the rating buttons."""
    box = gr.HTML(elem_id="tl-suggestion")
    accept = gr.Button("Accept suggestion (a)", size="sm", elem_id="tl-accept-suggestion")
    return box, accept


def build_section(
    rt: Runtime, opened: gr.State, cursor: gr.Number, suggestion: gr.HTML, marks: tuple[gr.Button, gr.Button]
) -> None:
    """Rollouts, gold, the three run buttons, Cancel, the status line, the curve and its help. ``marks`` are the
    +1 and -1 rating buttons, which Auto-label re-marks when it finishes."""
    panel = BranchPanel(rt)
    with gr.Row():
        rollouts = WholeNumber(4, label="Rollouts per step (N)", minimum=1, elem_id="tl-rollouts")
        budget = WholeNumber(0, label=BUDGET_LABEL + ", Branch here", minimum=0, elem_id="tl-branch-budget")
        gold = gr.Textbox(label="Gold answer (optional)", placeholder="e.g. 18", elem_id="tl-gold")
    with gr.Row():
        branch_btn = gr.Button("Branch here", size="sm", elem_id="tl-branch-here")
        credit_btn = gr.Button("Step-credit curve", size="sm", elem_id="tl-credit")
        auto_btn = gr.Button("Auto-label this sample", size="sm", elem_id="tl-autolabel")
        cancel_btn = gr.Button("Cancel", size="sm", variant="stop", elem_id="tl-branch-cancel")
    cost = gr.HTML(elem_id="tl-branch-cost-box", js_on_load=None)
    status = gr.HTML(elem_id="tl-branch-status")
    gr.on([opened.change, cursor.change, rollouts.change, budget.change], panel.cost,
          [opened, cursor, rollouts, budget], cost, api_visibility="private", queue=False)  # fmt: skip
    plot = gr.Plot(label="Step credit", elem_id="tl-credit-plot")
    data = gr.JSON(visible=False)
    gr.Markdown(CREDIT_HELP)

    branch_btn.click(panel.prepare, None, None, **PREPARE).success(
        panel.branch_here, [opened, cursor, rollouts, gold, budget], [status], api_name="branch_here", **MODEL_QUEUE
    )
    credit_btn.click(panel.prepare, None, None, **PREPARE).success(
        panel.credit, [opened, rollouts, gold], [status, plot, data], api_name="step_credit", **MODEL_QUEUE
    )
    auto_btn.click(panel.prepare, None, None, **PREPARE).success(
        panel.autolabel,
        [opened, cursor, rollouts, gold],
        [status, suggestion, *marks],
        api_name="autolabel",
        **MODEL_QUEUE,
    )
    cancel_btn.click(panel.cancel, None, None, api_name="cancel_branch", concurrency_limit=None)
