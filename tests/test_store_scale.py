"""What keeps the store fast at scale, on both backends: the labelling counters kept on write, the indexed text
search, agreement counted in the database, and migration 0005 filling all of it into an existing store."""

from __future__ import annotations

import random
import threading

import pytest
from alembic import command
from sqlalchemy import select, text
from store_support import make_result, save_example

from app.reasoning.agreement import agreement_report
from app.services import agreement as agreement_service
from app.store import Store, open_store, search
from app.store.db import alembic_config
from app.store.models import Sample, SampleProgress
from app.store.progress import ANYONE, refresh_progress


def _counters(store: Store) -> tuple[list[tuple[int, int]], list[tuple[int, int, int, bool, bool]]]:
    with store.engine.connect() as conn:
        steps = [tuple(r) for r in conn.execute(select(Sample.id, Sample.n_steps).order_by(Sample.id))]
        rows = conn.execute(
            select(
                SampleProgress.sample_id,
                SampleProgress.annotator_id,
                SampleProgress.n_labelled,
                SampleProgress.first_error,
                SampleProgress.done,
            ).order_by(SampleProgress.sample_id, SampleProgress.annotator_id)
        )
        return steps, [(a, b, c, bool(d), bool(e)) for a, b, c, d, e in rows]


def _recounted(store: Store) -> tuple[list[tuple[int, int]], list[tuple[int, int, int, bool, bool]]]:
    """The counters as a from-scratch recount makes them (rolled back afterwards)."""
    with store.engine.connect() as conn:
        transaction = conn.begin()
        refresh_progress(conn, None)
        steps = [tuple(r) for r in conn.execute(select(Sample.id, Sample.n_steps).order_by(Sample.id))]
        rows = conn.execute(
            select(SampleProgress.__table__).order_by(SampleProgress.sample_id, SampleProgress.annotator_id)
        )
        found = [(r.sample_id, r.annotator_id, r.n_labelled, bool(r.first_error), bool(r.done)) for r in rows]
        transaction.rollback()
    return steps, found


def test_counters_follow_every_label_merge_and_split(store: Store) -> None:
    run = store.get_run(save_example(store))
    first, second = run.samples[0], run.samples[1]
    steps = [s.step_id for s in first.steps]
    store.add_label(steps[0], "alice", 1)
    store.add_label(steps[1], "alice", -1, first_error=True)
    store.add_label(steps[0], "bob", 0)
    for step in second.steps:
        store.add_label(step.step_id, "bob", 1)
    store.add_label(steps[0], "alice", 0)  # a change of mind: still one labelled step
    ids = {name: i for i, name in enumerate(sorted(store.list_annotators()), start=1)}
    counters = _counters(store)
    assert counters == _recounted(store)
    progress = {(s, a): (n, fe, done) for s, a, n, fe, done in counters[1]}
    assert progress[(first.sample_id, ids["alice"])] == (2, True, True)  # the first error ends the sample
    assert progress[(first.sample_id, ids["bob"])] == (1, False, False)
    assert progress[(second.sample_id, ids["bob"])] == (4, False, True)
    assert progress[(first.sample_id, ANYONE)] == (2, True, True)

    store.merge_steps(second.sample_id, second.steps[0].step_id, second.steps[1].step_id)  # bob: 2 of 3 now
    head, _ = store.split_step(steps[2], 5)
    store.add_label(head, "carol", 1)
    counters = _counters(store)
    assert counters == _recounted(store)
    assert dict(counters[0])[second.sample_id] == 3 and dict(counters[0])[first.sample_id] == 5
    progress = {(s, a): (n, fe, done) for s, a, n, fe, done in counters[1]}
    assert progress[(second.sample_id, ids["bob"])] == (2, False, False)
    assert store.label_progress("bob").labelled == 0 and store.label_progress("alice").labelled == 1


def test_the_queue_lists_unfinished_samples_first_each_newest_run_first(store: Store) -> None:
    runs = [store.get_run(save_example(store, make_result(f"Problem {i}?"))) for i in range(3)]
    finished = runs[2].samples[1]
    for step in finished.steps:
        store.add_label(step.step_id, "alice", 1)
    queue = store.label_queue(annotator="alice", limit=4)
    assert [(q.run_id, q.sample_index, q.done) for q in queue] == [
        (runs[2].run_id, 0, False), (runs[2].run_id, 2, False), (runs[1].run_id, 0, False), (runs[1].run_id, 1, False)
    ]  # fmt: skip
    everything = store.label_queue(annotator="alice")
    assert everything[-1].sample_id == finished.sample_id and everything[-1].done
    assert len(everything) == 9 and store.label_progress("alice").text.startswith("1 of 9")


def test_search_finds_a_piece_of_text_in_any_case_and_only_that(store: Store) -> None:
    hello = save_example(store, make_result("Hello World, 100% sure?", answers=["a_c", "x", "y"]))
    other = save_example(store, make_result('Say "abc" twice', answers=["zzz", "q", "r"]))
    found = {term: [r.run_id for r in store.list_runs(search=term)] for term in
             ["lo wOR", "0% s", "a_c", '"abc"', "abc", "wo", "nothing here"]}  # fmt: skip
    assert found == {
        "lo wOR": [hello], "0% s": [hello], "a_c": [hello], '"abc"': [other], "abc": [other], "wo": [hello],
        "nothing here": [],
    }  # fmt: skip
    # A run whose samples are replaced (finished) is found by its new answer only: the index follows the rows.
    live = store.begin_run(make_result("Live one?", n_samples=1))
    store.checkpoint_run(live, make_result("Live one?", answers=["draftanswer"], n_samples=1).samples, 1.0)
    assert [r.run_id for r in store.list_runs(search="draftanswer")] == [live]
    done = make_result("Live one?", answers=["finalanswer"], n_samples=1)
    store.finish_run(live, done, [[]])
    assert store.list_runs(search="draftanswer") == []
    assert [r.run_id for r in store.list_runs(search="FINALANSWER")] == [live]


def _index_names(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            return set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
        return set(conn.execute(text("SELECT indexname FROM pg_indexes")).scalars())


def test_upgrading_a_store_made_at_0002_fills_the_counters_and_the_search_index(store: Store) -> None:
    run = store.get_run(save_example(store))
    for step in run.samples[0].steps:
        store.add_label(step.step_id, "alice", 1)
    store.add_label(run.samples[1].steps[0].step_id, "alice", -1, first_error=True)
    url = store.engine.url
    before = _counters(store)
    store.close()
    command.downgrade(alembic_config(url), "0002")
    store = open_store(url.render_as_string(hide_password=False))  # upgrades to head: 0005 backfills
    try:
        assert _counters(store) == before
        assert store.label_progress("alice").labelled == 2
        names = _index_names(store)
        if store.engine.dialect.name == "sqlite":
            assert {"prompts_fts", "samples_fts"} <= names
            with store.engine.connect() as conn:
                hits = conn.execute(text("SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH '\"2 + 2\"'"))
                assert list(hits.scalars()) == [run.prompt_id]
        else:
            assert "ix_trgm_prompts_text" in names
        assert [r.run_id for r in store.list_runs(search="(2 + 2)")] == [run.run_id]
    finally:
        store.close()


def test_agreement_counted_in_the_database_matches_cohen_kappa_on_the_ratings(store: Store) -> None:
    rng = random.Random(3)
    run = store.get_run(save_example(store, make_result(n_samples=3)))
    steps = [step.step_id for sample in run.samples for step in sample.steps]
    for name in ("alice", "bob", "carol"):
        for step in rng.sample(steps, 9):
            store.add_label(step, name, rng.choice([-1, 0, 1]))
    store.add_label(steps[0], "alice", 1)  # changes of mind: only the current label counts
    store.add_label(steps[0], "bob", -1)
    expected = agreement_report(store.step_ratings_by_annotator())
    view = agreement_service.agreement(store, max_disagreements=3)
    assert [(p.annotator_a, p.annotator_b, p.overlap) for p in view.pairs] == [
        (e.annotator_a, e.annotator_b, e.overlap) for e in expected
    ]
    for got, want in zip(view.pairs, expected, strict=True):
        assert got.raw_agreement == pytest.approx(want.raw_agreement)
        assert got.kappa == pytest.approx(want.kappa)
        assert got.n_disagreements == len(want.disagreements)
    shown = [(d.annotator_a, d.annotator_b, d.step_id) for d in view.disagreements]
    assert shown == [(e.annotator_a, e.annotator_b, s) for e in expected for s in e.disagreements][:3]
    assert agreement_service.kappa_from_counts({}) is None
    assert agreement_service.kappa_from_counts({(1, 1): 4}) == 1.0


def test_search_with_many_hits_walks_by_date_and_finds_the_same_runs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = [save_example(store, make_result(f"Puzzle number {i}?", answers=[f"ans{i}", "b", "c"])) for i in range(4)]
    expected = {term: [r.run_id for r in store.list_runs(search=term)] for term in ["puzzle", "ANS2", "ber 1"]}
    monkeypatch.setattr(search, "MANY", 1)  # every term counts as common: History walks runs newest first
    with store.engine.connect() as conn:
        assert search.walk_by_date(conn, "puzzle") == (store.engine.dialect.name == "sqlite")
    assert {term: [r.run_id for r in store.list_runs(search=term)] for term in expected} == expected
    assert expected["puzzle"] == runs[::-1] and expected["ANS2"] == [runs[2]] and expected["ber 1"] == [runs[1]]


def test_two_annotators_labelling_one_sample_at_once_keep_the_counters_right(store: Store) -> None:
    """Each label's refresh locks the sample's row first (its UPDATE), so concurrent refreshes of one sample queue
    instead of inserting the same progress rows twice."""
    run = store.get_run(save_example(store))
    steps = [s.step_id for s in run.samples[0].steps]
    other = open_store(store.engine.url.render_as_string(hide_password=False))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def label(target: Store, name: str) -> None:
        try:
            barrier.wait()
            for step in steps:
                target.add_label(step, name, 1)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=label, args=(s, n)) for s, n in ((store, "alice"), (other, "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert errors == []
    assert _counters(store) == _recounted(store)
    assert store.label_progress("alice").labelled == store.label_progress("bob").labelled == 1
