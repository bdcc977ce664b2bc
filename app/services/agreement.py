"""Agreement between annotators: Cohen's kappa per pair over the steps both rated, and where they disagree.

The Annotate tab's Agreement section and the ``/agreement`` API call :func:`agreement`; the maths is
:mod:`app.reasoning.agreement`'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app.reasoning.agreement import AgreementReport, agreement_report
from app.store.records import StoredStep
from app.store.repository import Store


@dataclass(frozen=True)
class Disagreement:
    """One step two annotators rated differently."""

    annotator_a: str
    annotator_b: str
    sample_id: int
    step_id: int
    step_index: int
    text: str
    rating_a: int
    rating_b: int


@dataclass(frozen=True)
class AgreementView:
    pairs: list[AgreementReport]
    disagreements: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [asdict(p) for p in self.pairs], "disagreements": [asdict(d) for d in self.disagreements]}


def agreement(store: Store, *, sample_id: int | None = None, max_disagreements: int = 200) -> AgreementView:
    """Cohen's kappa per annotator pair over the steps both rated, and the steps where they disagree."""
    ratings = store.step_ratings_by_annotator(sample_id)
    pairs = agreement_report(ratings)
    wanted = {step for pair in pairs for step in pair.disagreements}
    if not wanted:
        return AgreementView(pairs=pairs)
    steps: dict[int, StoredStep] = {}
    sample_ids = [sample_id] if sample_id is not None else sorted({s.sample_id for s in store.labelled_samples()})
    for sid in sample_ids:
        if wanted <= steps.keys():
            break
        steps.update((s.step_id, s) for s in store.steps_for_sample(sid) if s.step_id in wanted)
    found = [
        Disagreement(
            pair.annotator_a,
            pair.annotator_b,
            steps[step_id].sample_id,
            step_id,
            steps[step_id].index,
            steps[step_id].text,
            ratings[pair.annotator_a][step_id],
            ratings[pair.annotator_b][step_id],
        )
        for pair in pairs
        for step_id in pair.disagreements
        if step_id in steps
    ]
    return AgreementView(pairs=pairs, disagreements=found[:max_disagreements])
