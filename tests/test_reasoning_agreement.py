"""cohen_kappa and agreement_report on -1/0/+1 step ratings."""

import pytest

from app.reasoning.agreement import AgreementReport, agreement_report, cohen_kappa


def test_perfect_agreement_is_one():
    assert cohen_kappa([1, -1, 0, 1], [1, -1, 0, 1]) == 1.0


def test_both_constant_and_equal_is_one_not_undefined():
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) == 1.0


def test_both_constant_but_different_is_zero():
    assert cohen_kappa([1, 1], [0, 0]) == 0.0


def test_empty_is_undefined():
    assert cohen_kappa([], []) is None


def test_known_value():
    # observed 4/6; expected (3*2 + 2*2 + 1*2) / 36 = 1/3; kappa = (2/3 - 1/3) / (2/3) = 0.5
    assert cohen_kappa([1, 1, 1, 0, 0, -1], [1, 1, 0, 0, -1, -1]) == pytest.approx(0.5)


def test_systematic_disagreement_is_negative():
    assert cohen_kappa([1, -1, 1, -1], [-1, 1, -1, 1]) == pytest.approx(-1.0)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="same steps"):
        cohen_kappa([1], [1, 0])


def test_report_covers_each_overlapping_pair_once_with_its_disagreements():
    labels = {
        "bob": {0: 1, 1: 1, 2: -1, 3: 0},
        "alice": {0: 1, 1: -1, 2: -1, 9: 1},
        "carol": {7: 1},  # shares no step with anyone: no report
    }
    assert agreement_report(labels) == [
        AgreementReport(
            annotator_a="alice",
            annotator_b="bob",
            overlap=3,
            raw_agreement=pytest.approx(2 / 3),
            kappa=pytest.approx(cohen_kappa([1, -1, -1], [1, 1, -1])),
            disagreements=[1],
        )
    ]


def test_report_of_one_or_no_annotators_is_empty():
    assert agreement_report({}) == []
    assert agreement_report({"alice": {0: 1}}) == []
