"""Step labels (append-only with a current view), merge/split, verdicts and the labelling queue."""

from __future__ import annotations

import pytest
from store_support import THINKING, make_result, row_count, save_example

from app.store import NotFound, Store, StoredSample, StoreError


@pytest.fixture
def sample(store: Store) -> StoredSample:
    return store.get_run(save_example(store)).samples[0]


def _ids(sample: StoredSample) -> list[int]:
    return [step.step_id for step in sample.steps]


def test_a_change_of_mind_keeps_both_rows_and_the_newest_is_current(store: Store, sample: StoredSample) -> None:
    step = sample.steps[0].step_id
    store.add_label(step, "alice", 1, comment="looks right")
    store.add_label(step, "alice", -1, comment="no, 2 + 2 is fine but the claim is not")
    current = store.current_labels(sample.sample_id, "alice")
    assert (current[step].rating, current[step].comment) == (-1, "no, 2 + 2 is fine but the claim is not")
    assert [(h.rating, h.annotator) for h in store.label_history(step)] == [(1, "alice"), (-1, "alice")]
    assert row_count(store, "step_labels") == 2


def test_current_labels_keep_annotators_apart(store: Store, sample: StoredSample) -> None:
    first, second = _ids(sample)[:2]
    store.add_label(first, "alice", 1)
    store.add_label(first, "bob", 0)
    store.add_label(second, "bob", -1)
    assert {k: v.rating for k, v in store.current_labels(sample.sample_id, "alice").items()} == {first: 1}
    assert {k: v.rating for k, v in store.current_labels(sample.sample_id, "bob").items()} == {first: 0, second: -1}
    assert {k: v.annotator for k, v in store.current_labels(sample.sample_id).items()} == {first: "bob", second: "bob"}
    assert store.current_labels(sample.sample_id, "nobody") == {}
    assert store.step_ratings_by_annotator(sample.sample_id) == {"alice": {first: 1}, "bob": {first: 0, second: -1}}


def test_first_error_forces_a_negative_rating(store: Store, sample: StoredSample) -> None:
    step = sample.steps[1].step_id
    store.add_label(step, "alice", 1, first_error=True)
    label = store.current_labels(sample.sample_id, "alice")[step]
    assert (label.rating, label.first_error) == (-1, True)
    assert label.to_rating().step_index == 1


@pytest.mark.parametrize("rating", [2, -2, True])
def test_a_rating_outside_minus_one_to_one_is_refused(store: Store, sample: StoredSample, rating: int) -> None:
    with pytest.raises(StoreError, match=f"rating={rating!r} for step {sample.steps[0].step_id}"):
        store.add_label(sample.steps[0].step_id, "alice", rating)


@pytest.mark.parametrize(("name", "message"), [("  ", "annotator name is empty"), ("x" * 65, "at most 64")])
def test_annotator_names_are_validated(store: Store, name: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.ensure_annotator(name)


def test_ensure_annotator_is_idempotent(store: Store) -> None:
    store.ensure_annotator(" alice ")
    store.ensure_annotator("alice")
    assert store.list_annotators() == ["alice"]


def test_merge_replaces_two_neighbours_and_keeps_labels_on_other_steps(store: Store, sample: StoredSample) -> None:
    first, second, third, answer = _ids(sample)
    for step in (first, second, answer):
        store.add_label(step, "alice", 1)
    merged = store.merge_steps(sample.sample_id, second, third)
    steps = store.steps_for_sample(sample.sample_id)
    assert [s.step_id for s in steps] == [first, merged, answer]
    assert [s.index for s in steps] == [0, 1, 2]
    assert steps[1].text == THINKING[THINKING.index("Then") :]  # the exact source text across both spans
    assert set(store.current_labels(sample.sample_id, "alice")) == {first, answer}
    assert [label.step_active for label in store.label_history(second)] == [False]  # history stays


def test_split_replaces_a_step_by_two_and_keeps_labels_on_other_steps(store: Store, sample: StoredSample) -> None:
    first, second, third, answer = _ids(sample)
    store.add_label(first, "alice", 1)
    store.add_label(second, "alice", 0)
    head, tail = store.split_step(second, len("Then 4 * 3"))
    steps = store.steps_for_sample(sample.sample_id)
    assert [s.step_id for s in steps] == [first, head, tail, third, answer]
    assert [s.index for s in steps] == [0, 1, 2, 3, 4]
    assert [(s.text, THINKING[s.start : s.end]) for s in steps[1:3]] == [
        ("Then 4 * 3", "Then 4 * 3"),
        ("= 12.", "= 12."),
    ]
    assert set(store.current_labels(sample.sample_id, "alice")) == {first}
    assert len(store.label_history(second)) == 1


def test_a_label_on_a_replaced_step_is_refused_with_a_message(store: Store, sample: StoredSample) -> None:
    step = sample.steps[0].step_id
    store.split_step(step, 6)
    with pytest.raises(StoreError, match=f"cannot label step {step}: it was replaced by a merge or split"):
        store.add_label(step, "alice", 1)
    with pytest.raises(StoreError, match="already replaced"):
        store.split_step(step, 3)


def test_a_label_on_a_deleted_step_is_refused(store: Store, sample: StoredSample) -> None:
    store.delete_run(sample.run_id)
    with pytest.raises(NotFound, match=f"cannot label step {sample.steps[0].step_id}: it does not exist"):
        store.add_label(sample.steps[0].step_id, "alice", 1)


def test_merge_and_split_refuse_what_they_cannot_do(store: Store, sample: StoredSample) -> None:
    first, second, third, answer = _ids(sample)
    with pytest.raises(StoreError, match="not neighbours"):
        store.merge_steps(sample.sample_id, first, third)
    with pytest.raises(StoreError, match="not neighbours"):
        store.merge_steps(sample.sample_id, third, answer)  # thinking and answer stay apart
    with pytest.raises(StoreError, match=f"belongs to sample {sample.sample_id}, not to sample 999"):
        store.merge_steps(999, first, second)
    with pytest.raises(StoreError, match="both parts must keep some text"):
        store.split_step(first, 0)
    assert [s.step_id for s in store.steps_for_sample(sample.sample_id)] == [first, second, third, answer]


def test_verdicts_are_append_only_and_can_be_withdrawn(store: Store, sample: StoredSample) -> None:
    assert store.current_verdict(sample.sample_id, "alice") is None
    store.set_verdict(sample.sample_id, "alice", True)
    store.set_verdict(sample.sample_id, "bob", False)
    assert store.current_verdict(sample.sample_id, "alice") is True
    store.set_verdict(sample.sample_id, "alice", False)
    assert store.current_verdict(sample.sample_id, "alice") is False
    store.set_verdict(sample.sample_id, "alice", None)
    assert store.current_verdict(sample.sample_id, "alice") is None
    assert store.current_verdict(sample.sample_id, "bob") is False
    with pytest.raises(NotFound, match="sample 999"):
        store.set_verdict(999, "alice", True)


def test_queue_puts_unfinished_samples_first_and_counts_progress(store: Store) -> None:
    run = store.get_run(save_example(store))
    complete, marked, partial = run.samples
    for step in complete.steps:
        store.add_label(step.step_id, "alice", 1)
    store.add_label(marked.steps[0].step_id, "alice", -1, first_error=True)
    store.add_label(partial.steps[0].step_id, "alice", 1)
    store.add_label(partial.steps[1].step_id, "bob", 1)  # someone else's label doesn't count for alice

    queue = store.label_queue(annotator="alice")
    assert [(q.sample_id, q.n_steps, q.n_labelled, q.done) for q in queue] == [
        (partial.sample_id, 4, 1, False),
        (complete.sample_id, 4, 4, True),
        (marked.sample_id, 4, 1, True),
    ]
    assert queue[0].prompt_excerpt == run.prompt and queue[0].model == run.model
    assert store.label_progress("alice").text == "2 of 3 samples labelled"
    assert store.label_progress("carol") == store.label_progress("carol", run_id=run.run_id)
    assert store.label_progress("carol").labelled == 0
    assert [q.n_labelled for q in store.label_queue(annotator=None, unlabelled_first=False)] == [4, 1, 2]


def test_queue_filters_by_run_model_and_prompt(store: Store) -> None:
    one = save_example(store, make_result("Count the APPLES"))
    two = save_example(store, make_result("Count the pears", model="big"))
    store.save_run(make_result("no steps"), [])  # nothing to label: not in the queue
    assert {q.run_id for q in store.label_queue(annotator="alice")} == {one, two}
    assert {q.run_id for q in store.label_queue(annotator="alice", run_id=one)} == {one}
    assert {q.run_id for q in store.label_queue(annotator="alice", model="big")} == {two}
    assert {q.run_id for q in store.label_queue(annotator="alice", prompt_search="apples")} == {one}
    assert len(store.label_queue(annotator="alice", limit=2)) == 2
    assert store.label_progress("alice", model="big").total == 3


def test_queue_ignores_labels_on_replaced_steps(store: Store, sample: StoredSample) -> None:
    first, second = _ids(sample)[:2]
    store.add_label(first, "alice", 1)
    store.add_label(second, "alice", -1, first_error=True)
    store.merge_steps(sample.sample_id, first, second)
    item = next(q for q in store.label_queue(annotator="alice") if q.sample_id == sample.sample_id)
    assert (item.n_steps, item.n_labelled, item.done) == (3, 0, False)
