"""The trace lens, shared by Playground, History and Self-consistency: a toggle that draws a run's trace token by
token, coloured by entropy, with a thin confidence strip, forking tokens and pivots marked, and each token's
probability and top alternatives on hover.

Reads only the run JSON (``samples[].token_*``), so it works the same for a run just generated, one reopened from
History and a Self-consistency report. Every piece of model text is HTML-escaped (text and attributes); nothing is
fetched, and the only script is our own :data:`TOKEN_CLICK_JS`. Each token carries ``data-sample``/``data-index``,
which that script sends when a token is clicked (click-to-branch, :mod:`app.ui.lens_branch`). The forking/pivot
logic is :mod:`app.reasoning.lens`.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from app.domain import SERVER_NO_TOKEN_DATA
from app.reasoning.lens import DEFAULT_FORKING_SHARE, forking_mask, summarize, token_pivots, trace_from_json

NO_TOKEN_DATA = "No token data for this run (it was saved before per-token capture existed)."
NO_SERVER_DATA = "This server does not provide token probabilities."
#: Entropy (nats) drawn at full colour; higher is clipped.
ENTROPY_SCALE = 3.0

LENS_CSS = """
.tl-lens { font-family: ui-monospace, monospace; font-size: 0.88em; margin: 0.4em 0 1em; }
.tl-head { font-family: sans-serif; margin-bottom: 0.2em; }
.tl-strip { display: flex; height: 6px; margin: 0.2em 0 0.4em; border-radius: 2px; overflow: hidden; }
.tl-strip i { flex: 1 1 0; min-width: 1px; }
.tl-text { white-space: pre-wrap; line-height: 1.6; }
.tl-t { border-radius: 2px; }
.tl-fork { border-bottom: 2px solid #7c3aed; }
.tl-pivot { outline: 1px solid #0369a1; font-weight: 600; }
.tl-forced { color: #6b7280; font-style: italic; background: #e5e7eb; }
.tl-ans { text-decoration: underline dotted #9ca3af; }
.tl-text .tl-t { cursor: pointer; }
.tl-text .tl-t:hover { outline: 1px dashed #7c3aed; }
"""
#: The lens's click handler (our own, inline): a click on a token sends its sample and token number, 1-based.
TOKEN_CLICK_JS = """
element.addEventListener("click", (e) => {
  const t = e.target.closest("[data-index]");
  if (t) trigger("click", {sample: Number(t.dataset.sample) + 1, token: Number(t.dataset.index) + 1});
});
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _heat(entropy: float | None) -> str:
    if entropy is None:
        return ""
    alpha = min(max(entropy / ENTROPY_SCALE, 0.0), 1.0) * 0.75
    return f"background-color: rgba(249, 115, 22, {alpha:.2f});"


def _strip_colour(prob: float | None) -> str:
    if prob is None:
        return "#d1d5db"
    hue = round(120 * min(max(prob, 0.0), 1.0))  # red (unsure) .. green (sure)
    return f"hsl({hue}, 70%, 45%)"


def sample_lens_html(sample: dict[str, Any], number: int, share: float = DEFAULT_FORKING_SHARE) -> str:
    """One sample drawn through the lens (or the no-data message)."""
    trace = trace_from_json(sample)
    title = f"Sample {number}"
    if trace is None:
        why = NO_SERVER_DATA if sample.get("token_source") == SERVER_NO_TOKEN_DATA else NO_TOKEN_DATA
        return f'<div class="tl-lens tl-none"><div class="tl-head">{_esc(title)}: {_esc(why)}</div></div>'
    fork = forking_mask(trace, share)
    pivots = token_pivots(trace)
    pivot_tokens = {j for p in pivots if not p.forced for j in p.tokens}
    summary = summarize(trace, share=share)
    forced = trace.forced
    strip, spans = [], []
    for j, piece in enumerate(trace.pieces):
        prob, entropy = trace.prob[j], trace.entropy[j]
        classes = ["tl-t"]
        if forced[j]:
            classes.append("tl-forced")
            tip = "forced by budget forcing (no probability)"
        else:
            alternatives = ", ".join(
                f"{trace.vocab.get(i, '')!r} {p:.3f}"
                for i, p in zip(trace.top_ids[j], trace.top_probs[j], strict=False)
            )
            tip = f"p = {prob:.3f} · entropy {entropy:.2f} nats\nalternatives: {alternatives}"
        if fork[j]:
            classes.append("tl-fork")
            tip += "\nforking token (top entropy)"
        if j in pivot_tokens:
            classes.append("tl-pivot")
        if trace.labels[j].lower() == "a":
            classes.append("tl-ans")
        data = f'data-sample="{number - 1}" data-index="{j}"'
        if entropy is not None:
            data += f' data-entropy="{entropy:.3f}"'
        style = _heat(entropy)
        spans.append(
            f'<span class="{" ".join(classes)}" {data} style="{style}" title="{_esc(tip)}">{_esc(piece)}</span>'
        )
        strip.append(f'<i style="background:{_strip_colour(prob)}"></i>')
    pivot_text = ", ".join(f"{w} ×{n}" for w, n in summary.pivots.items()) or "none"
    head = (
        f"{title} · mean entropy {summary.mean_entropy if summary.mean_entropy is not None else '–'} nats · "
        f"{summary.forking} forking tokens (top {share:.0%}) · pivots: {pivot_text} · {summary.forced} forced · "
        f"{trace.source}"
    )
    return (
        f'<div class="tl-lens"><div class="tl-head">{_esc(head)}</div>'
        f'<div class="tl-strip" title="confidence of each token: red = unsure, green = sure">{"".join(strip)}</div>'
        f'<div class="tl-text">{"".join(spans)}</div></div>'
    )


def lens_html(run: dict[str, Any] | None, enabled: bool = True, share: float = DEFAULT_FORKING_SHARE) -> str:
    """Every sample of a run JSON through the lens; empty when the toggle is off or there is no run."""
    if not enabled or not isinstance(run, dict) or not run.get("samples"):
        return ""
    share = min(max(float(share), 0.0), 1.0)
    parts = [sample_lens_html(s, i + 1, share) for i, s in enumerate(run["samples"]) if isinstance(s, dict)]
    return f"<style>{LENS_CSS}</style>" + "".join(parts)


def add_lens(run_json: gr.JSON, prefix: str) -> gr.HTML:
    """A toggle, a forking-share slider and the lens under them, redrawn whenever ``run_json`` changes. A click on a
    token triggers the view's ``click`` event with ``sample`` and ``token`` (see :mod:`app.ui.lens_branch`)."""
    with gr.Row():
        enabled = gr.Checkbox(value=False, label="Trace lens", elem_id=f"{prefix}-lens-toggle", scale=1)
        share = gr.Slider(
            0.0, 1.0, value=DEFAULT_FORKING_SHARE, step=0.05, label="Forking tokens: top share by entropy", scale=2
        )
    view = gr.HTML(elem_id=f"{prefix}-lens", js_on_load=TOKEN_CLICK_JS)
    for trigger in (enabled.change, share.release, run_json.change):
        trigger(lens_html, [run_json, enabled, share], view, api_visibility="private", queue=False)
    return view
