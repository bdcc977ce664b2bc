"""Agreement between annotators: Cohen's kappa per pair over the steps both rated, and where they disagree.

The Annotate tab's Agreement section and the ``/agreement`` API call :func:`agreement`. The database does the
counting (``app.store.agreement_queries``: counts per rating pair, the disagreeing steps with a LIMIT), so
the time and memory it takes do not grow with the number of labels read into Python; kappa is worked out here
from those counts, the same value :func:`app.reasoning.agreement.cohen_kappa` gives for the ratings themselves.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from app.reasoning.agreement import AgreementReport
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


@dataclass
class PairAgreement(AgreementReport):
    """An :class:`AgreementReport` whose ``disagreements`` lists at most the view's ``max_disagreements`` step
    ids; ``n_disagreements`` counts them all."""

    n_disagreements: int = 0


@dataclass(frozen=True)
class AgreementView:
    pairs: list[PairAgreement]
    disagreements: list[Disagreement] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [asdict(p) for p in self.pairs], "disagreements": [asdict(d) for d in self.disagreements]}


def kappa_from_counts(cells: dict[tuple[int, int], int]) -> float | None:
    """Cohen's kappa from {(rating A, rating B): steps}; None with no steps, 1.0 when chance agreement is certain
    (as :func:`app.reasoning.agreement.cohen_kappa`)."""
    n = sum(cells.values())
    if n == 0:
        return None
    observed = sum(count for (x, y), count in cells.items() if x == y) / n
    counts_a: Counter[int] = Counter()
    counts_b: Counter[int] = Counter()
    for (x, y), count in cells.items():
        counts_a[x] += count
        counts_b[y] += count
    expected = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def agreement(store: Store, *, sample_id: int | None = None, max_disagreements: int = 200) -> AgreementView:
    """Cohen's kappa per annotator pair over the steps both rated, and (at most ``max_disagreements``) the steps
    where they disagree, pair by pair (names sorted), each pair's by step id."""
    cells: dict[tuple[str, str], dict[tuple[int, int], int]] = defaultdict(dict)
    for row in store.rating_pair_counts(sample_id):
        cells[(row.annotator_a, row.annotator_b)][(row.rating_a, row.rating_b)] = row.steps
    pairs: list[PairAgreement] = []
    found: list[Disagreement] = []
    for (name_a, name_b), pair_cells in sorted(cells.items()):
        overlap = sum(pair_cells.values())
        n_disagreeing = sum(count for (x, y), count in pair_cells.items() if x != y)
        steps = store.disagreeing_steps(name_a, name_b, sample_id=sample_id, limit=max_disagreements - len(found))
        found += [
            Disagreement(name_a, name_b, s.sample_id, s.step_id, s.step_index, s.text, s.rating_a, s.rating_b)
            for s in steps
        ]
        pairs.append(
            PairAgreement(
                annotator_a=name_a,
                annotator_b=name_b,
                overlap=overlap,
                raw_agreement=1.0 - n_disagreeing / overlap,
                kappa=kappa_from_counts(pair_cells),
                disagreements=[s.step_id for s in steps],
                n_disagreements=n_disagreeing,
            )
        )
    return AgreementView(pairs=pairs, disagreements=found)
