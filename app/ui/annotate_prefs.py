"""Annotate's preference section: the sample on screen (A) and another sample of the same prompt (B) side by
side, each with its collapsible thinking and its answer, and "A is better / B is better / Tie" buttons with
keys (← A, → B, t tie, while the section is open); after a choice the next B comes up, until every other sample
of the prompt has been compared (Argilla's ranking and Label Studio's pairwise templates are the reference).

A preference is stored with ``app.services.labeling.add_preference`` as the logged-in (or named) annotator; a
tie records nothing (a tie is no training pair, and the store keeps only chosen/rejected pairs) and says so.
Model text is escaped (``html_text``) and placed only in element content. A part of the Annotate tab
(``annotate.build_tab`` places it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gradio as gr

from app.errors import StoreError
from app.services import labeling
from app.services.labeling import SampleBrief
from app.services.runtime import Runtime
from app.ui.caller import login_of
from app.ui.refusal import refusal
from app.ui.render import html_text

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
#: Keys -> the elem_id of the button they press (only while the section is open and no text field has focus);
#: the script is installed with the tab's other shortcuts (``annotate.build_tab``).
KEYS = {"ArrowLeft": "tl-a-better", "ArrowRight": "tl-b-better", "t": "tl-tie"}
KEYS_JS = """
if (!window.__tlPrefKeys) {
  window.__tlPrefKeys = true;
  const keys = __KEYS__;
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.isComposing || e.repeat || !(e.key in keys)) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const pair = document.getElementById("tl-pref-pair");
    const el = document.getElementById(keys[e.key]);
    const btn = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    if (!pair || pair.offsetParent === null || !btn || btn.disabled || btn.offsetParent === null) return;
    e.preventDefault();
    btn.click();
  });
}
""".replace("__KEYS__", json.dumps(KEYS))
NO_OTHER = "<p>No other sample of this prompt yet (sample k > 1 in Self-consistency to get some).</p>"


def side_html(side: str, brief: SampleBrief | None) -> str:
    """One column of the pair: which sample, its thinking folded, its answer."""
    if brief is None:
        return NO_OTHER if side == "B" else ""
    return (
        f"<div class='tl-pref-side' data-side='{side}' data-sample-id='{brief.sample_id}'>"
        f"<h4 style='margin:0'>{side}</h4><small>sample {brief.sample_id} · run {brief.run_id} "
        f"#{brief.sample_index} · {html_text(brief.model)} · answer: {html_text(brief.extracted_answer or '—')}"
        f"</small><details><summary>thinking ({len(brief.thinking):,} characters)</summary>"
        f"<div style='white-space:pre-wrap'>{html_text(brief.thinking)}</div></details>"
        f"<div style='white-space:pre-wrap'><b>Answer:</b> {html_text(brief.answer)}</div></div>"
    )


def brief_of(rt: Runtime, sample_id: int) -> SampleBrief:
    """The sample on screen as a preference side."""
    s = rt.db.get_sample(sample_id)
    run = rt.db.get_run(s.run_id)
    return SampleBrief(s.sample_id, s.run_id, s.index, run.model, s.thinking, s.answer, s.extracted_answer)


def choices(briefs: list[SampleBrief]) -> list[tuple[str, int]]:
    return [
        (f"sample {b.sample_id} (run {b.run_id} #{b.sample_index}, {b.model}): {b.extracted_answer or '—'}",
         b.sample_id)
        for b in briefs
    ]  # fmt: skip


class Preferences:
    """The section's handlers over one runtime's store."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def pair(self, sample_id: int, other_id: Any) -> tuple[str, str]:
        """(A, B) columns for the sample on screen and the chosen other sample."""
        briefs = labeling.preference_candidates(self.rt.db, sample_id)
        other = next((b for b in briefs if other_id not in (None, "") and b.sample_id == int(other_id)), None)
        return side_html("A", brief_of(self.rt, sample_id)), side_html("B", other)

    def opened(self, sample_id: int) -> tuple[Any, str, str]:
        """What the section shows for a freshly opened sample: the B menu (first candidate picked) and the pair."""
        menu = choices(labeling.preference_candidates(self.rt.db, sample_id))
        first = menu[0][1] if menu else None
        return gr.update(choices=menu, value=first), *self.pair(sample_id, first)

    def show(self, other_id: Any, seen: dict | None) -> tuple[str, str]:
        return self.pair(seen["sample_id"], other_id) if seen else ("", "")

    def choose(self, outcome: str) -> Callable[..., tuple[Any, str, str, str]]:
        """A handler for "A is better" (``a``), "B is better" (``b``) or "Tie" (``tie``): record, then the next B."""

        def act(name: str, seen: dict | None, other_id: Any, why: str, request: gr.Request) -> tuple[Any, ...]:
            if not seen or other_id in (None, ""):
                raise refusal("open a sample and pick another sample of the same prompt (B) first")
            a, b = seen["sample_id"], int(other_id)
            try:
                annotator = labeling.resolve_annotator(name, login_of(request))
                if outcome == "tie":
                    said = f"Tie between sample {a} (A) and sample {b} (B): nothing recorded (a tie is no pair)."
                else:
                    chosen, rejected = (a, b) if outcome == "a" else (b, a)
                    labeling.add_preference(self.rt.db, chosen, rejected, annotator, why or "")
                    said = f"Recorded: sample {chosen} is better than sample {rejected}."
                menu = choices(labeling.preference_candidates(self.rt.db, a))
            except StoreError as exc:
                raise refusal(str(exc)) from exc
            ids = [v for _, v in menu]
            later = ids[ids.index(b) + 1 :] if b in ids else []
            if not later:
                return gr.update(), *self.pair(a, b), f"{said} Every other sample of this prompt is compared."
            return gr.update(value=later[0]), *self.pair(a, later[0]), f"{said} Next: B is sample {later[0]}."

        return act


def build(rt: Runtime, opened: gr.State, name: gr.Textbox) -> SimpleNamespace:
    """The section inside the caller's accordion; returns its components (``other`` and the two sides are
    outputs of opening a sample) and the handlers (``prefs``)."""
    prefs = Preferences(rt)
    other = gr.Dropdown([], label="B: another sample of the same prompt", elem_id="tl-other")
    with gr.Row(elem_id="tl-pref-pair", equal_height=False):
        side_a = gr.HTML(elem_id="tl-pref-a", js_on_load=None)
        side_b = gr.HTML(elem_id="tl-pref-b", js_on_load=None)
    reason = gr.Textbox(label="Reason (optional)", elem_id="tl-pref-reason")
    with gr.Row():
        a_better = gr.Button("◀ A is better (←)", size="sm", elem_id="tl-a-better")
        tie = gr.Button("Tie (t)", size="sm", elem_id="tl-tie")
        b_better = gr.Button("B is better (→) ▶", size="sm", elem_id="tl-b-better")
    said = gr.Markdown(elem_id="tl-pref-said")
    other.input(prefs.show, [other, opened], [side_a, side_b], **PRIVATE)
    for button, outcome in ((a_better, "a"), (b_better, "b"), (tie, "tie")):
        button.click(prefs.choose(outcome), [name, opened, other, reason], [other, side_a, side_b, said], **PRIVATE)
    return SimpleNamespace(prefs=prefs, other=other, side_a=side_a, side_b=side_b, reason=reason)
