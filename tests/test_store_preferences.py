"""Preferences between samples of one prompt, and rankings stored as their implied pairs."""

from __future__ import annotations

import pytest
from store_support import make_result, save_example

from app.store import NotFound, Store, StoreError


def test_a_preference_is_recorded_with_its_prompt_and_reason(store: Store) -> None:
    a, b, _ = store.get_run(save_example(store)).samples
    pref_id = store.add_preference(a.sample_id, b.sample_id, "alice", reason="shorter")
    (pref,) = store.preferences()
    assert (pref.preference_id, pref.chosen_sample_id, pref.rejected_sample_id) == (pref_id, a.sample_id, b.sample_id)
    assert (pref.annotator, pref.reason, pref.rank_group) == ("alice", "shorter", None)
    assert pref.prompt_id == store.get_run(a.run_id).prompt_id


def test_samples_of_the_same_prompt_from_different_runs_can_be_compared(store: Store) -> None:
    a = store.get_run(save_example(store)).samples[0]
    b = store.get_run(save_example(store, make_result(model="other/model"))).samples[0]
    store.add_preference(b.sample_id, a.sample_id, "alice")
    assert len(store.preferences(sample_id=a.sample_id)) == 1


def test_a_sample_cannot_be_preferred_over_itself(store: Store) -> None:
    a = store.get_run(save_example(store)).samples[0]
    with pytest.raises(StoreError, match=f"sample {a.sample_id} cannot be preferred over itself"):
        store.add_preference(a.sample_id, a.sample_id, "alice")


def test_samples_of_different_prompts_cannot_be_compared(store: Store) -> None:
    a = store.get_run(save_example(store, make_result("one"))).samples[0]
    b = store.get_run(save_example(store, make_result("two"))).samples[0]
    with pytest.raises(StoreError, match="answer different prompts"):
        store.add_preference(a.sample_id, b.sample_id, "alice")
    with pytest.raises(StoreError, match="answer different prompts"):
        store.add_ranking([a.sample_id, b.sample_id], "alice")
    assert store.preferences() == []


def test_a_missing_sample_is_named(store: Store) -> None:
    a = store.get_run(save_example(store)).samples[0]
    with pytest.raises(NotFound, match="sample\\(s\\) 999 do not exist"):
        store.add_preference(a.sample_id, 999, "alice")


def test_a_ranking_is_stored_as_its_implied_pairs(store: Store) -> None:
    best, middle, worst = (s.sample_id for s in store.get_run(save_example(store)).samples)
    group = store.add_ranking([best, middle, worst], "bob", reason="clarity")
    pairs = store.preferences(annotator="bob")
    assert [(p.chosen_sample_id, p.rejected_sample_id) for p in pairs] == [
        (best, middle),
        (best, worst),
        (middle, worst),
    ]
    assert {p.rank_group for p in pairs} == {group}
    assert store.preferences(annotator="alice") == []


@pytest.mark.parametrize(("ranking", "message"), [([1], "at least two"), ([1, 2, 1], "lists a sample twice")])
def test_a_ranking_needs_distinct_samples(store: Store, ranking: list[int], message: str) -> None:
    save_example(store)
    with pytest.raises(StoreError, match=message):
        store.add_ranking(ranking, "alice")
