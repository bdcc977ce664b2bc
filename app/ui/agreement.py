"""The Agreement view: Cohen's kappa per annotator pair over the steps both rated, and where they disagree.

An adapter over ``app.services.labeling.agreement``; the Annotate tab shows it as a sub-tab (``build_section``). Step text is shown in a table cell
(plain text, not HTML).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.errors import StoreError
from app.services import labeling
from app.services.runtime import Runtime

PAIR_HEADERS = ["annotator A", "annotator B", "steps both rated", "raw agreement", "Cohen's kappa", "disagreements"]
DISAGREEMENT_HEADERS = ["A", "B", "sample", "step #", "rating A", "rating B", "step text"]


def agreement_tables(view: labeling.AgreementView) -> tuple[str, list[list[Any]], list[list[Any]]]:
    """(summary, pair rows, disagreement rows) for the two tables."""
    pairs = [
        [p.annotator_a, p.annotator_b, p.overlap, round(p.raw_agreement, 3),
         "n/a" if p.kappa is None else round(p.kappa, 3), len(p.disagreements)]
        for p in view.pairs
    ]  # fmt: skip
    rows = [
        [d.annotator_a, d.annotator_b, d.sample_id, d.step_index, labeling.RATING_TEXT[d.rating_a],
         labeling.RATING_TEXT[d.rating_b], d.text]
        for d in view.disagreements
    ]  # fmt: skip
    if not pairs:
        summary = "No two annotators have rated the same step yet."
    else:
        summary = f"{len(pairs)} annotator pair(s); {len(rows)} disagreeing step(s) shown."
    return summary, pairs, rows


def build_section(rt: Runtime) -> None:
    """The agreement controls and tables, inside whatever container the caller opened."""
    store = rt.db
    with gr.Row():
        sample = gr.Number(None, label="Only sample id (0 = all samples)", precision=0, minimum=0)
        compute = gr.Button("Compute agreement", variant="primary")
    summary = gr.Markdown()
    pairs = gr.Dataframe(headers=PAIR_HEADERS, interactive=False, elem_id="tl-agreement-pairs")
    gr.Markdown("**Disagreements** (steps the two rated differently)")
    disagreements = gr.Dataframe(headers=DISAGREEMENT_HEADERS, interactive=False, wrap=True)

    def on_compute(sample_id: float | None) -> tuple[str, list[list[Any]], list[list[Any]]]:
        try:
            view = labeling.agreement(store, sample_id=int(sample_id) if sample_id else None)
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc
        return agreement_tables(view)

    compute.click(on_compute, [sample], [summary, pairs, disagreements], api_visibility="private")
