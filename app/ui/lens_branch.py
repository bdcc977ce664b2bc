"""Click a token in the trace lens to branch from there: the click selects the token, shows the step that
contains it, and "Branch here ×N" resamples N continuations from the end of that step, voted and saved as a
branch run. Shared by the Playground, History and Self-consistency tabs (imports no tab).

Owns: the token -> step mapping (:func:`locate`; thinking tokens only) and the panel under the lens (the
lens's own inline click script, ``app.ui.lens.TOKEN_CLICK_JS``, sends the clicked token; nothing is fetched). Branching itself is
:func:`app.services.branching.resample` -- which continues from the end of a *step*, not from an arbitrary
token -- run through :class:`app.ui.running.ModelTab` (progress, Cancel, one generation at a time), so the
UI says "branching from step k (the step containing this token)". Model text is escaped (``html_text``).
Token and sample numbers are 1-based here, as everywhere in the UI.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.domain import SampleResult
from app.errors import InvalidInput, StoreError, UserError
from app.services import branching
from app.services.runtime import Runtime
from app.ui.branch_here import BUDGET_LABEL, budget_of, result_html, run_id_of
from app.ui.caller import user_of
from app.ui.control_values import as_int
from app.ui.fields import WholeNumber
from app.ui.render import html_text, status_html
from app.ui.running import MODEL_QUEUE, PREPARE, ModelTab

HINT = "<div class='tl-token-where'>Turn the trace lens on and click a thinking token to branch from the step that contains it.</div>"


@dataclass(frozen=True)
class TokenPoint:
    """A clicked token and the step it maps to (``sample``, ``token`` and ``step`` 0-based)."""

    run_id: int
    sample: int
    token: int
    step: int
    piece: str
    step_text: str

    def describe(self) -> str:
        """HTML (escaped): which token, and the step the branch will start after."""
        return (
            f"Token {self.token + 1} <code>{html_text(repr(self.piece))}</code> of sample {self.sample + 1} "
            f"(run #{self.run_id}): branching from <b>step {self.step + 1}</b> (the step containing this token; "
            f"rollouts continue after its end): <i>{html_text(self.step_text[:160])}</i>"
        )


def _thinking_span(sample: SampleResult, token: int) -> tuple[int, int]:
    """(start, end) of thinking token ``token`` in ``sample.thinking``.

    The token pieces cover only what was generated; a branch's thinking starts with its parent's prefix, and
    the stored thinking is stripped. So the generated thinking is found where it starts in ``sample.thinking``.
    """
    trace = sample.tokens
    assert trace is not None
    end_of_thinking = next((j for j, lab in enumerate(trace.labels) if lab.lower() != "t"), len(trace.labels))
    generated = "".join(trace.pieces[:end_of_thinking])
    core = generated.strip()
    skipped = len(generated) - len(generated.lstrip())
    text = sample.thinking
    anchor = core[:32]
    base, at = None, text.find(anchor) if anchor else -1
    while at >= 0:  # where the generated text starts: everything after it there is the generated text
        if core.startswith(text[at:]) and len(text) - at >= min(len(core), len(anchor)):
            base = at
            break
        at = text.find(anchor, at + 1)
    if base is None:
        raise InvalidInput(
            "the token data of this sample does not match its thinking text; use Branch here with a step number"
        )
    before = sum(len(p) for p in trace.pieces[:token])
    start = base + before - skipped
    return max(0, min(start, len(text))), max(0, min(start + len(trace.pieces[token]), len(text)))


def locate(rt: Runtime, run_id: int, sample: int, token: int) -> TokenPoint:
    """Map token ``token`` of sample ``sample`` (both 0-based) of a stored run to the thinking step holding it.

    A ``ValueError`` (one line, with the fix) for: no such run/sample (from the branching service), no token
    data, a token number out of range, a token in the answer or the closing tag.
    """
    source = branching.load_source(rt, run_id, sample)
    trace = source.sample.tokens
    where = f"sample {sample + 1} of run {run_id}"
    if trace is None or not trace.pieces:
        raise InvalidInput(
            f"{where} has no token data (saved before per-token capture, or by a server without token "
            "probabilities), so no token can be clicked; use Branch here with a step number instead"
        )
    if not 0 <= token < len(trace.pieces):
        raise InvalidInput(
            f"token {token + 1} does not exist: {where} has tokens 1 to {len(trace.pieces)}; click a token in the lens"
        )
    kind = trace.labels[token].lower()
    if kind != "t":
        what = "in the answer" if kind == "a" else "the tag that closes the thinking"
        raise InvalidInput(
            f"token {token + 1} of {where} is {what}, not thinking; click a thinking token "
            "(to branch from an answer step, use Branch here with its step number)"
        )
    thinking_steps = [(k, s) for k, s in enumerate(source.steps) if s.source == "thinking"]
    if not thinking_steps:
        raise InvalidInput(f"{where} has no thinking steps to branch from; use Branch here with a step number")
    start, end = _thinking_span(source.sample, token)
    piece = source.sample.thinking[start:end]
    # A whitespace token belongs to the step before it (the gap after a step); else the step holding its text.
    at = start + (len(piece) - len(piece.lstrip())) if piece.strip() else start - 1
    step = next((k for k, s in reversed(thinking_steps) if s.start <= at), thinking_steps[0][0])
    return TokenPoint(run_id, sample, token, step, trace.pieces[token], source.steps[step].text)


def _point(rt: Runtime, ref: Any, sample: Any, token: Any) -> TokenPoint:
    """The point the panel's boxes name; every problem is a one-line ``ValueError`` (a missing run too)."""
    run_id = run_id_of(ref)
    s = as_int(sample, "sample")
    t = as_int(token, "token")
    if s is None or t is None:
        raise InvalidInput("no token selected: turn the trace lens on and click a thinking token")
    if s < 1 or t < 1:
        raise InvalidInput(f"sample {s} / token {t}: both are numbered from 1; click a token in the lens")
    try:
        return locate(rt, run_id, s - 1, t - 1)
    except StoreError as exc:  # no such run (or deleted): the store's message says which
        raise InvalidInput(str(exc)) from None


class TokenBranch(ModelTab):
    idle_message = "No rollouts are running in this session."

    def __init__(self, rt: Runtime, tab: str) -> None:
        super().__init__(rt)
        self.tab = f"{tab}-token-branch"

    def pick(self, ref: Any, evt: gr.EventData) -> tuple[Any, Any, str]:
        """A click in the lens: fill the sample and token boxes and say which step the branch starts after."""
        sample, token = getattr(evt, "sample", None), getattr(evt, "token", None)
        if sample is None or token is None:  # a click beside the tokens
            return gr.update(), gr.update(), gr.update()
        try:
            return sample, token, self.preview(ref, sample, token)
        except ValueError as exc:
            return sample, token, f"<div class='tl-token-where tl-error'>{html_text(str(exc))}</div>"

    def preview(self, ref: Any, sample: Any, token: Any) -> str:
        """The selected point, as the panel shows it (raises ``ValueError`` with the fix when it can't branch)."""
        return f"<div class='tl-token-where'>{_point(self.rt, ref, sample, token).describe()}</div>"

    def cost(self, ref: Any, sample: Any, token: Any, n: Any, budget: Any) -> str:
        """What the rollouts from the selected token's step will cost, before they start ("" until one is picked)."""
        if sample in (None, "") or token in (None, ""):
            return ""
        try:
            point = _point(self.rt, ref, sample, token)
            source = branching.load_source(self.rt, point.run_id, point.sample)
            rollouts = as_int(n, "rollouts", 4) or 4
            text = branching.plan_rollouts(source, point.step, rollouts, budget_of(budget)).text
        except (ValueError, UserError):  # a refused point, or a run deleted meanwhile (NotFound)
            return ""  # the panel above already says why this token can't branch
        return f"<div class='tl-branch-cost'>Cost: {html_text(text)}.</div>"

    def run(
        self, ref: Any, sample: Any, token: Any, n: Any, gold: str, budget: Any, request: gr.Request
    ) -> Iterator[Any]:
        """N rollouts from the end of the step containing the token, voted and saved as a branch run."""
        chosen: dict[str, TokenPoint] = {}

        def plan():  # noqa: ANN202
            point = chosen["point"] = _point(self.rt, ref, sample, token)
            rollouts, most = as_int(n, "rollouts", 4) or 4, budget_of(budget)
            return lambda cancel, report: branching.resample(
                self.rt, point.run_id, point.sample, point.step, rollouts, gold=gold or None, cancel=cancel,
                progress=report, user=user_of(request), budget=most,
            )  # fmt: skip

        yield from self.stream_task(
            request,
            plan,
            show=status_html,  # one output: the HTML itself, not a 1-tuple (the API would see a list)
            describe=lambda item, s: f"Rolling out… {getattr(item, 'tokens', 0)} tokens · {s:.1f} s",
            finish=lambda report: result_html(report, chosen["point"].describe() + ". "),
        )


def build(rt: Runtime, tab: str, lens: gr.HTML, ref: gr.components.Component) -> None:
    """The panel under a lens: the selected token, N, gold, "Branch here ×N", Cancel and the result.

    ``lens`` is the view ``add_lens`` made (it runs the click script); ``ref`` holds the run (its JSON or a run #).
    Endpoints: ``{tab}_token_branch`` (run, sample, token, N, gold, thinking budget or None; 1-based) and ``cancel_{tab}_token_branch``.
    """
    panel = TokenBranch(rt, tab)
    with gr.Row():
        sample = WholeNumber(None, label="Sample", minimum=1, elem_id=f"tl-{tab}-tsample")
        token = WholeNumber(None, label="Token (click one in the lens)", minimum=1, elem_id=f"tl-{tab}-token")
        n = WholeNumber(4, label="Rollouts (N)", minimum=1, elem_id=f"tl-{tab}-tn")
        budget = WholeNumber(0, label=BUDGET_LABEL, minimum=0, elem_id=f"tl-{tab}-tbudget")
        gold = gr.Textbox(label="Gold answer (optional)", elem_id=f"tl-{tab}-tgold")
    where = gr.HTML(HINT, elem_id=f"tl-{tab}-token-where", js_on_load=None)
    with gr.Row():
        go = gr.Button("Branch here ×N from the selected token", size="sm", elem_id=f"tl-{tab}-token-branch")
        stop = gr.Button("Cancel", size="sm", variant="stop", elem_id=f"tl-{tab}-token-cancel")
    cost = gr.HTML(elem_id=f"tl-{tab}-token-cost", js_on_load=None)
    out = gr.HTML(elem_id=f"tl-{tab}-token-result", js_on_load=None)
    boxes = [ref, sample, token, n, budget]
    gr.on([b.change for b in boxes[1:]], panel.cost, boxes, cost, api_visibility="private", queue=False)
    lens.click(panel.pick, [ref], [sample, token, where], api_visibility="private", concurrency_limit=None)
    ref.change(lambda: (None, None, HINT), None, [sample, token, where], api_visibility="private", queue=False)
    go.click(panel.prepare, None, None, **PREPARE).success(
        panel.run, [ref, sample, token, n, gold, budget], [out], api_name=f"{tab}_token_branch", **MODEL_QUEUE
    )
    stop.click(panel.cancel, None, None, api_name=f"cancel_{tab}_token_branch", concurrency_limit=None)
