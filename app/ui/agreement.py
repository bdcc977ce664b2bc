"""The Agreement view: Cohen's kappa per annotator pair over the steps both rated, and where they disagree.

An adapter over ``app.services.agreement.agreement``; the Annotate tab shows it as a sub-tab (``build_section``). Step text is shown in a table cell
(plain text, not HTML).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.errors import StoreError
from app.services import agreement as agreement_service
from app.services import auto_labels, labeling
from app.services.runtime import Runtime
from app.ui.fields import WholeNumber
from app.ui.refusal import refusal

PAIR_HEADERS = ["annotator A", "annotator B", "steps both rated", "raw agreement", "Cohen's kappa", "disagreements"]
DISAGREEMENT_HEADERS = ["A", "B", "sample", "step #", "rating A", "rating B", "step text"]
AUTO_HEADERS = ["annotator", "steps both labelled", "raw agreement", "Cohen's kappa vs auto", "disagreements"]


def agreement_tables(view: agreement_service.AgreementView) -> tuple[str, list[list[Any]], list[list[Any]]]:
    """(summary, pair rows, disagreement rows) for the two tables."""
    pairs = [
        [p.annotator_a, p.annotator_b, p.overlap, round(p.raw_agreement, 3),
         "n/a" if p.kappa is None else round(p.kappa, 3), p.n_disagreements]
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
        sample = WholeNumber(None, label="Only sample id (0 = all samples)", minimum=0)
        compute = gr.Button("Compute agreement", variant="primary")
    summary = gr.Markdown()
    pairs = gr.Dataframe(headers=PAIR_HEADERS, interactive=False, elem_id="tl-agreement-pairs")
    gr.Markdown("**Disagreements** (steps the two rated differently)")
    disagreements = gr.Dataframe(headers=DISAGREEMENT_HEADERS, interactive=False, wrap=True)

    gr.Markdown(
        "**Human vs auto** (`auto:mc` rollout labels, never counted as a person): Cohen's kappa per annotator on the "
        "steps both labelled, then all annotators pooled. A person's +1 and 0 count as *good*, -1 as *wrong*; the "
        "automatic hard label is *good* when any rollout from after the step reached the target."
    )
    auto_pairs = gr.Dataframe(headers=AUTO_HEADERS, interactive=False, elem_id="tl-agreement-auto")

    def on_compute(sample_id: float | None) -> tuple[str, list[list[Any]], list[list[Any]], list[list[Any]]]:
        try:
            wanted = int(sample_id) if sample_id else None
            view = agreement_service.agreement(store, sample_id=wanted)
            versus = auto_labels.human_vs_auto(store, wanted)
        except StoreError as exc:
            raise refusal(str(exc)) from exc
        rows = [
            [r.annotator_a, r.overlap, round(r.raw_agreement, 3), "n/a" if r.kappa is None else round(r.kappa, 3),
             len(r.disagreements)]
            for r in versus
        ]  # fmt: skip
        return (*agreement_tables(view), rows)

    compute.click(on_compute, [sample], [summary, pairs, disagreements, auto_pairs], api_visibility="private")
