"""Pure rendering for the Annotate tab: labelling views -> HTML snippets and table rows, plus the page's
shortcut help (the labelling script is ``annotate_keys``). No events, no store: every function takes the service's dataclasses.

Everything a model or a person wrote goes through ``html_text`` and is placed only in element content, never in
an attribute, so a ``<script>`` in a trace shows as text. Attributes carry numbers only (``data-pos``,
``data-step-id``, ``data-rating``), which the browser tests and the click-to-select script read.
"""

from __future__ import annotations

import itertools
from typing import Any

from app.services.labeling import RATING_TEXT, LabelRecord, QueueView, SampleView
from app.ui.render import html_text

RATING_STYLE: dict[int | None, tuple[str, str]] = {
    1: ("#16a34a", "+1"),
    0: ("#6b7280", "0"),
    -1: ("#dc2626", "-1"),
    None: ("#94a3b8", "·"),
}
QUEUE_HEADERS = ["sample", "run", "#", "model", "prompt", "steps", "labelled", "done"]
HISTORY_HEADERS = ["time (UTC)", "annotator", "rating", "first error", "comment"]

SHORTCUT_HELP = (
    "<small>Keys: <b>1</b>/<b>+</b> good · <b>2</b>/<b>0</b> neutral · <b>3</b>/<b>-</b> wrong · "
    "<b>f</b> first error · <b>j</b>/<b>k</b> next/previous step · <b>n</b> next sample. "
    "Click a step to select it. Ratings apply at once; the line above the steps says when they are saved. "
    "In Preference (open): <b>←</b> A is better · <b>→</b> B is better · <b>t</b> tie.</small>"
)
_RENDERS = itertools.count(1)  # each render's nonce: the page script tells a fresh render from its own edits
PLACEHOLDER = "<p>Pick a sample in the queue (click a row, type its id, or press <b>n</b>).</p>"
NO_NAME = "<p>Type your name above and press Enter to start labelling.</p>"


def steps_html(view: SampleView, cursor: int) -> str:
    """The steps with their current rating: the selected one outlined, those after the first error dimmed.

    The wrapper carries the sample id, the cursor and a fresh nonce for the page's labelling script
    (``annotate_keys``); each step its position, step id, rating and whether it comes after the first error."""
    if not view.steps:
        return "<p>This sample has no steps.</p>"
    rows = [f"<div class='tl-steps' data-sample-id='{view.sample_id}' data-cursor='{cursor}' "
            f"data-nonce='{next(_RENDERS)}'>"]  # fmt: skip
    for pos, step in enumerate(view.steps):
        color, badge = RATING_STYLE[step.rating]
        border = "2px solid #2563eb" if pos == cursor else "1px solid #e5e7eb"
        dim = "opacity:.45;" if step.after_first_error else ""
        flag = " · <b style='color:#dc2626'>first error</b>" if step.first_error else ""
        note = f"<div style='color:#6b7280;font-style:italic'>{html_text(step.comment)}</div>" if step.comment else ""
        rating = "" if step.rating is None else step.rating
        rows.append(
            f"<div class='tl-step' data-pos='{pos}' data-step-id='{step.step_id}' data-rating='{rating}' "
            f"data-after='{int(step.after_first_error)}' "
            f"style='border:{border};border-radius:6px;padding:6px 8px;margin:4px 0;cursor:pointer;{dim}'>"
            f"<span style='background:{color};color:white;border-radius:4px;padding:0 6px;font-weight:600'>"
            f"{badge}</span> <small>#{step.index} · {html_text(step.source)}{flag}</small>"
            f"<div style='white-space:pre-wrap'>{html_text(step.text)}</div>{note}</div>"
        )
    return "".join(rows) + "</div>"


def header_html(view: SampleView) -> str:
    """Which sample this is, whose labels are shown, how far along, and the prompt."""
    state = "done" if view.done else f"{view.n_labelled} of {len(view.steps)} steps labelled"
    return (
        f"<div class='tl-sample' data-sample-id='{view.sample_id}'><small>Sample {view.sample_id} · run "
        f"{view.run_id} #{view.sample_index} · {html_text(view.model)} · stop: {html_text(view.stop_reason)} · answer: "
        f"{html_text(view.extracted_answer or '—')} · labelling as <b>{html_text(view.annotator)}</b> · {state}</small>"
        f"<div style='white-space:pre-wrap;font-weight:600;margin:4px 0'>{html_text(view.prompt)}</div></div>"
    )


def current_html(view: SampleView, cursor: int) -> str:
    """The selected step, large enough to read while rating it."""
    if not view.steps:
        return ""
    step = view.steps[cursor]
    note = " (after the first error: PRM800K leaves it unlabelled)" if step.after_first_error else ""
    return (
        f"<small>Step #{step.index} ({len(view.steps)} steps, numbered from #0){note}</small>"
        f"<div style='white-space:pre-wrap'>{html_text(step.text)}</div>"
    )


def queue_rows(queue: QueueView) -> list[list[Any]]:
    return [
        [i.sample_id, i.run_id, i.sample_index, i.model, i.prompt_excerpt, i.n_steps, i.n_labelled, "✓" * i.done]
        for i in queue.items
    ]


def history_rows(history: list[LabelRecord]) -> list[list[Any]]:
    return [
        [h.created_at.strftime("%Y-%m-%d %H:%M:%S"), h.annotator, RATING_TEXT[h.rating], "yes" * h.first_error,
         h.comment]
        for h in history
    ]  # fmt: skip
