""" "Branch here" for a finished trace, shared by the Playground and Self-consistency tabs (Annotate has its own,
on the step on screen): N rollouts from the end of a chosen step of a chosen sample, voted, saved as a branch.

A shared UI module (it imports no tab): the work is :func:`app.services.branching.resample`, the running loop
:class:`app.ui.running.ModelTab` (progress, Cancel, one generation at a time). Answers are escaped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from app.errors import InvalidInput, UserError
from app.services import branching
from app.services.consistency import ConsistencyReport
from app.services.rollout_plan import ROLLOUT_ALLOWANCE
from app.services.runtime import Runtime
from app.ui.caller import user_of
from app.ui.control_values import as_int
from app.ui.fields import WholeNumber
from app.ui.render import html_text, status_html
from app.ui.running import MODEL_QUEUE, PREPARE, ModelTab

#: The thinking budget box beside N (Branch here, token branch, Annotate's Branch here).
BUDGET_LABEL = f"Thinking budget per rollout (0: thinking so far + {ROLLOUT_ALLOWANCE})"


def run_id_of(ref: Any) -> int:
    """The run id from a run JSON (``{"run_id": ...}``) or a number box."""
    value = ref.get("run_id") if isinstance(ref, dict) else ref
    run_id = as_int(value, "run #")
    if run_id is None or run_id < 1:
        raise InvalidInput("no saved run to branch from: generate (and save) a trace first, or type its run #")
    return run_id


def result_html(report: ConsistencyReport, where: str = "") -> str:
    """The vote of a finished branch, counting only rollouts that finished an answer, and the run it was saved
    as (the vote text escaped; ``where``: our own HTML)."""
    return (f"<div class='tl-branch-result' data-run='{int(report.run_id)}' data-answered="
            f"'{sum(c for _, c in report.vote.counts)}'>{where}Saved as run #{report.run_id} (a branch, in "
            f"History): {html_text(report.vote_text())}.</div>")  # fmt: skip


def budget_of(value: Any) -> int | None:
    """The thinking budget box: blank or 0 = the default (thinking so far + the allowance)."""
    return as_int(value, "thinking budget") or None


def cost_html(rt: Runtime, ref: Any, sample: Any, step: Any, n: Any, budget: Any) -> str:
    """What the rollouts will cost, before they start (or why they can't start yet), for the boxes' values."""
    try:
        run_id = run_id_of(ref)
        s = (as_int(sample, "sample", 1) or 1) - 1
        k = (as_int(step, "step", 1) or 1) - 1
        rollouts = as_int(n, "rollouts", 4) or 4
        source = branching.load_source(rt, run_id, s)
        text = branching.plan_rollouts(source, k, rollouts, budget_of(budget)).text
    except (UserError, ValueError) as exc:
        return f"<div class='tl-branch-cost tl-muted'>{html_text(str(exc))}</div>"
    return f"<div class='tl-branch-cost'>Cost: {html_text(text)}.</div>"


class BranchHere(ModelTab):
    idle_message = "No rollouts are running in this session."

    def __init__(self, rt: Runtime, tab: str) -> None:
        super().__init__(rt)
        self.tab = f"{tab}-branch"

    def run(
        self, ref: Any, sample: Any, step: Any, n: Any, gold: str, budget: Any, request: gr.Request
    ) -> Iterator[Any]:
        def plan():  # noqa: ANN202
            run_id = run_id_of(ref)
            s = (as_int(sample, "sample", 1) or 1) - 1
            k = (as_int(step, "step", 1) or 1) - 1
            rollouts = as_int(n, "rollouts", 4) or 4
            who, most = user_of(request), budget_of(budget)
            return lambda token, report: branching.resample(
                self.rt, run_id, s, k, rollouts, gold=gold or None, cancel=token, progress=report, user=who,
                budget=most,
            )  # fmt: skip

        yield from self.stream_task(
            request,
            plan,
            show=status_html,  # one output: the HTML itself, not a 1-tuple (the API would see a list)
            describe=lambda item, s: f"Rolling out… {getattr(item, 'tokens', 0)} tokens · {s:.1f} s",
            finish=result_html,
        )


def build(rt: Runtime, tab: str, ref: gr.components.Component, *, with_sample: bool = True) -> None:
    """The controls inside the caller's container; ``ref`` holds the run (its JSON, or a run # box)."""
    panel = BranchHere(rt, tab)
    with gr.Row():
        sample = WholeNumber(1, label="Sample", minimum=1, visible=with_sample, elem_id=f"tl-{tab}-bsample")
        step = WholeNumber(1, label="Step", minimum=1, elem_id=f"tl-{tab}-bstep")
        n = WholeNumber(4, label="Rollouts (N)", minimum=1, elem_id=f"tl-{tab}-bn")
        budget = WholeNumber(0, label=BUDGET_LABEL, minimum=0, elem_id=f"tl-{tab}-bbudget")
        gold = gr.Textbox(label="Gold answer (optional)", elem_id=f"tl-{tab}-bgold")
    with gr.Row():
        go = gr.Button("Branch here", size="sm", elem_id=f"tl-{tab}-branch")
        stop = gr.Button("Cancel", size="sm", variant="stop", elem_id=f"tl-{tab}-branch-cancel")
    cost = gr.HTML(elem_id=f"tl-{tab}-branch-cost", js_on_load=None)
    out = gr.HTML(elem_id=f"tl-{tab}-branch-result")
    gr.Markdown(
        "N continuations from the end of the chosen step (the trace split into steps as in Annotate; here the "
        "first step is 1, which Annotate shows as #0) in one batched "
        "generate, under the run's sampling rules; the thinking already written counts against the thinking "
        "budget, which by default is that thinking plus a modest allowance (not the run's effort preset)."
    )
    boxes = [ref, sample, step, n, budget]
    gr.on([b.change for b in boxes], lambda *v: cost_html(rt, *v), boxes, cost, api_visibility="private",
          queue=False)  # fmt: skip
    go.click(panel.prepare, None, None, **PREPARE).success(
        panel.run, [ref, sample, step, n, gold, budget], [out], api_name=f"{tab}_branch_here", **MODEL_QUEUE
    )
    stop.click(panel.cancel, None, None, api_name=f"cancel_{tab}_branch", concurrency_limit=None)
