"""The lens logic: forking tokens, pivots located in tokens, per-sample summaries (pure functions)."""

from __future__ import annotations

import pytest

from app.domain import TokenTrace
from app.reasoning.lens import count_pivots, find_pivots, forking_mask, summarize, token_pivots


def _trace(pieces: list[str], entropy: list[float | None], labels: str | None = None) -> TokenTrace:
    labels = labels or "t" * len(pieces)
    prob = [None if e is None else 0.5 for e in entropy]
    return TokenTrace(
        token_ids=list(range(len(pieces))),
        labels=labels,
        prob=prob,
        entropy=entropy,
        top_ids=[[] for _ in pieces],
        top_probs=[[] for _ in pieces],
        source="test",
        pieces=pieces,
    )


def test_forking_tokens_are_the_top_share_by_entropy_never_forced_or_certain():
    entropy = [0.1, 2.0, 0.0, 1.5, None, 0.3, 3.0, 0.2, 0.4, 0.5]
    trace = _trace(["x"] * 10, entropy, "ttttTttttt")
    assert [j for j, f in enumerate(forking_mask(trace)) if f] == [1, 6]  # 20% of 9 sampled tokens = 2
    assert sum(forking_mask(trace, 0.5)) == 4 and not forking_mask(trace, 1.0)[2]  # entropy 0: no choice made
    assert sum(forking_mask(trace, 0.0)) == 0
    with pytest.raises(ValueError, match="forking share=1.5 must be between 0 and 1"):
        forking_mask(trace, 1.5)


def test_pivots_are_whole_words_case_insensitive_with_their_tokens():
    text = "So 13. Wait, hmm... Alternatively 26. Awaiting nothing; wait."
    assert [p.word for p in find_pivots(text)] == ["Wait", "Hmm", "Alternatively", "Wait"]
    assert count_pivots(text) == {"Wait": 2, "Hmm": 1, "Alternatively": 1}
    trace = _trace(["So", " 13.", "\n", "Wait", ",", " Hm", "m", "."], [1.0] * 8, "tttTTttt")
    pivots = token_pivots(trace)
    assert [(p.word, p.tokens, p.forced) for p in pivots] == [("Wait", (3,), True), ("Hmm", (5, 6), False)]


def test_summary_counts_only_model_chosen_pivots_and_handles_missing_data():
    trace = _trace(["\n", "Wait", " Hmm", " ok"], [None, None, 2.0, 1.0], "TTtt")
    s = summarize(trace)
    assert s.has_tokens and s.mean_entropy == 1.5 and s.mean_prob == 0.5 and s.forced == 2
    assert s.pivots == {"Hmm": 1} and s.n_pivots == 1 and s.forking == 0  # round(0.2 * 2) = 0
    old = summarize(None, "Wait, Hmm. Wait")
    assert not old.has_tokens and old.mean_entropy is None and old.pivots == {"Wait": 2, "Hmm": 1}
