"""Export queries: LabelledSample, PreferencePair and verdict-only samples with the right content, page by page.

(Paging over a richer store, against whole-selection exports, is in ``test_export_stream.py``.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import update
from store_support import make_result, make_steps, save_example

from app.labelled_data import LabelledSample
from app.store import Store
from app.store.models import AutoStepLabel, SampleVerdict, StepLabel

LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)


def test_labelled_samples_give_one_row_per_sample_and_annotator(store: Store) -> None:
    result = make_result()
    run = store.get_run(store.save_run(result, make_steps(result)))
    sample = run.samples[0]
    steps = [s.step_id for s in sample.steps]
    store.add_label(steps[2], "alice", 1)
    store.add_label(steps[0], "alice", 1)
    store.add_label(steps[0], "alice", 0, comment="changed my mind")
    store.add_label(steps[1], "bob", -1, first_error=True)
    store.set_verdict(sample.sample_id, "alice", False)

    rows = store.labelled_samples()
    assert [(r.sample_id, r.annotator) for r in rows] == [(sample.sample_id, "alice"), (sample.sample_id, "bob")]
    alice = rows[0]
    assert isinstance(alice, LabelledSample)
    assert (alice.run_id, alice.prompt, alice.model) == (run.run_id, result.prompt, result.model)
    assert (alice.thinking, alice.answer) == (result.samples[0].thinking, result.samples[0].answer)
    assert alice.steps == make_steps(result)[0]
    assert [(r.step_index, r.rating, r.comment) for r in alice.ratings] == [(0, 0, "changed my mind"), (2, 1, "")]
    assert alice.marked_correct is False
    assert alice.created_at == max(r.created_at for r in alice.ratings)
    assert [(r.step_index, r.rating, r.first_error) for r in rows[1].ratings] == [(1, -1, True)]
    assert rows[1].marked_correct is None


def test_labelled_samples_filter_by_annotator_model_and_since(store: Store) -> None:
    small = store.get_run(save_example(store)).samples[0]
    big = store.get_run(save_example(store, make_result(model="big"))).samples[0]
    store.add_label(small.steps[0].step_id, "alice", 1)
    store.add_label(big.steps[0].step_id, "bob", 1)
    assert [r.sample_id for r in store.labelled_samples(annotator="alice")] == [small.sample_id]
    assert [r.sample_id for r in store.labelled_samples(model="big")] == [big.sample_id]
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert store.labelled_samples(since=later) == []
    naive_past = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=1)  # naive = UTC
    assert len(store.labelled_samples(since=naive_past)) == 2


def test_labels_on_replaced_steps_are_not_exported(store: Store) -> None:
    sample = store.get_run(save_example(store)).samples[0]
    first, second = (s.step_id for s in sample.steps[:2])
    store.add_label(first, "alice", 1)
    store.merge_steps(sample.sample_id, first, second)
    assert store.labelled_samples() == []


def test_verdict_samples_include_judged_samples_without_step_labels(store: Store) -> None:
    a, b, c = store.get_run(save_example(store)).samples
    store.set_verdict(a.sample_id, "alice", True)
    store.set_verdict(b.sample_id, "alice", False)
    store.add_label(b.steps[0].step_id, "alice", -1)
    store.set_verdict(c.sample_id, "alice", True)
    store.set_verdict(c.sample_id, "alice", None)  # withdrawn
    rows = store.verdict_samples()
    assert [(r.sample_id, r.marked_correct, len(r.ratings)) for r in rows] == [
        (a.sample_id, True, 0),
        (b.sample_id, False, 1),
    ]
    assert store.verdict_samples(annotator="bob") == []
    assert store.verdict_samples(model="other") == []


def test_preference_pairs_carry_both_traces(store: Store) -> None:
    result = make_result()
    a, b, _ = store.get_run(store.save_run(result, [])).samples
    store.add_preference(b.sample_id, a.sample_id, "alice", reason="right answer")
    (pair,) = store.preference_pairs()
    assert (pair.prompt, pair.annotator, pair.model, pair.reason) == (
        result.prompt,
        "alice",
        result.model,
        "right answer",
    )
    assert (pair.chosen_thinking, pair.chosen_answer) == (b.thinking, b.answer)
    assert (pair.rejected_thinking, pair.rejected_answer) == (a.thinking, a.answer)
    assert pair.created_at is not None


def test_preference_pairs_filter_and_name_both_models_when_they_differ(store: Store) -> None:
    small = store.get_run(save_example(store)).samples
    big = store.get_run(save_example(store, make_result(model="big"))).samples[0]
    store.add_preference(small[0].sample_id, small[1].sample_id, "alice")
    store.add_preference(big.sample_id, small[2].sample_id, "bob")
    assert [p.model for p in store.preference_pairs(model="big")] == ["big vs tiny/model"]
    assert [p.annotator for p in store.preference_pairs(annotator="alice")] == ["alice"]
    assert len(store.preference_pairs(model="tiny/model")) == 2
    assert store.preference_pairs(since=datetime.now(timezone.utc) + timedelta(minutes=1)) == []


def _age(store: Store, table: Any, row_ids: list[int]) -> None:
    """Stamp some rows of an append-only table long ago (a clock that went back, rows copied from elsewhere)."""
    with store.engine.begin() as conn:
        conn.execute(update(table).where(table.id.in_(row_ids)).values(created_at=LONG_AGO))


def _samples(store: Store, n: int) -> list[int]:
    return [store.get_run(save_example(store)).samples[0].sample_id for _ in range(n)]


def test_since_pages_by_the_current_label_only(store: Store) -> None:
    """A page is never empty before the end: its samples are picked by the rule ``since`` applies (the newest
    *current* label), so a sample whose only recent label was replaced by one stamped earlier is not picked."""
    samples = [store.get_run(save_example(store)).samples[0] for _ in range(4)]
    ids = [store.add_label(sample.steps[0].step_id, "alice", 1) for sample in samples]
    _age(store, StepLabel, [ids[0], ids[2]])  # samples 0 and 2: labelled long ago
    _age(store, StepLabel, [store.add_label(samples[1].steps[0].step_id, "alice", -1)])  # 1: changed, stamped old
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    assert [s.sample_id for s in store.labelled_samples(since=since)] == [samples[3].sample_id]
    assert [s.sample_id for s in store.labelled_samples(since=since, limit=1)] == [samples[3].sample_id]
    assert store.labelled_samples(since=since, after=samples[3].sample_id, limit=1) == []


def test_since_pages_verdicts_and_auto_labels_by_their_current_row(store: Store) -> None:
    old, replaced, withdrawn, recent = _samples(store, 4)
    since = datetime.now(timezone.utc) - timedelta(minutes=5)
    _age(store, SampleVerdict, [store.set_verdict(old, "alice", True)])
    store.set_verdict(replaced, "alice", True)
    _age(store, SampleVerdict, [store.set_verdict(replaced, "alice", False)])
    store.set_verdict(withdrawn, "alice", True)
    store.set_verdict(withdrawn, "alice", None)
    store.set_verdict(recent, "alice", False)
    assert [s.sample_id for s in store.verdict_samples(since=since, limit=1)] == [recent]
    assert store.verdict_samples(since=since, after=recent, limit=1) == []

    def auto(sample_id: int) -> list[int]:
        labels = [(step.step_id, 0.5) for step in store.steps_for_sample(sample_id)]
        return store.add_auto_labels(sample_id, labels, rollouts=2, target="12", target_kind="gold", settings={})

    _age(store, AutoStepLabel, auto(old))
    auto(replaced)
    _age(store, AutoStepLabel, auto(replaced))
    auto(recent)
    assert [s.sample_id for s in store.auto_labelled_samples(since=since, limit=1)] == [recent]
    assert [s.sample_id for s in store.auto_labelled_samples()] == [old, replaced, recent]


def test_queries_page_by_id_and_stop_on_an_empty_page(store: Store) -> None:
    a, b, c = store.get_run(save_example(store)).samples
    for sample in (a, c):
        for who in ("alice", "bob"):
            store.add_label(sample.steps[0].step_id, who, 1)
    assert [(s.sample_id, s.annotator) for s in store.labelled_samples(limit=1)] == [
        (a.sample_id, "alice"), (a.sample_id, "bob"),
    ]  # fmt: skip
    assert [s.sample_id for s in store.labelled_samples(after=a.sample_id, limit=1)] == [c.sample_id] * 2
    assert store.labelled_samples(after=c.sample_id, limit=1) == []
    store.add_preference(a.sample_id, b.sample_id, "alice")
    store.add_preference(c.sample_id, b.sample_id, "bob")
    first, second = store.preference_pairs()
    assert first.preference_id is not None and second.preference_id == first.preference_id + 1
    assert store.preference_pairs(after=first.preference_id, limit=5) == [second]
