"""Inter-annotator agreement on step ratings.

Owns: Cohen's kappa and the per-pair report (overlap, raw agreement, kappa, disagreeing steps).
Does not know: where ratings are stored or who may see them; it takes plain
``{annotator: {step_id: rating}}`` dicts with ratings -1 / 0 / +1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters over the same items.

    None when undefined (no items). When chance agreement is certain (both raters used one
    and the same label throughout) the raters agree perfectly, so the result is 1.0.
    """
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} ratings and b has {len(b)}; pass ratings of the same steps in the same order")
    n = len(a)
    if n == 0:
        return None
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    counts_a, counts_b = Counter(a), Counter(b)
    expected = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


@dataclass
class AgreementReport:
    """How two annotators compare on the steps both rated."""

    annotator_a: str
    annotator_b: str
    overlap: int
    raw_agreement: float
    kappa: float | None
    disagreements: list[int] = field(default_factory=list)


def agreement_report(labels: Mapping[str, Mapping[int, int]]) -> list[AgreementReport]:
    """One report per annotator pair (names sorted) that rated at least one common step."""
    reports: list[AgreementReport] = []
    for name_a, name_b in combinations(sorted(labels), 2):
        ratings_a, ratings_b = labels[name_a], labels[name_b]
        shared = sorted(set(ratings_a) & set(ratings_b))
        if not shared:
            continue
        a = [ratings_a[step] for step in shared]
        b = [ratings_b[step] for step in shared]
        disagreements = [step for step, x, y in zip(shared, a, b, strict=True) if x != y]
        reports.append(
            AgreementReport(
                annotator_a=name_a,
                annotator_b=name_b,
                overlap=len(shared),
                raw_agreement=1.0 - len(disagreements) / len(shared),
                kappa=cohen_kappa(a, b),
                disagreements=disagreements,
            )
        )
    return reports
