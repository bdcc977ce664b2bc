"""Saving runs, the History list, loading, deleting, and sweeps."""

from __future__ import annotations

from dataclasses import replace

import pytest
from store_support import make_result, make_steps, row_count, save_example

from app.store import NotFound, Store, StoreError, open_store


def test_a_result_with_three_samples_round_trips(store: Store) -> None:
    result = make_result()
    run_id = store.save_run(result, make_steps(result), gold="12", label="budget 256")
    run = store.get_run(run_id)
    assert run.to_result() == result  # every field of every sample, settings and messages included
    assert (run.kind, run.status, run.gold, run.label, run.seed) == ("playground", "done", "12", "budget 256", 7)
    assert [s.extracted_answer for s in run.samples] == ["12", "13", "14"]
    assert [[st.to_step() for st in s.steps] for s in run.samples] == make_steps(result)
    assert run.created_at.tzinfo is not None


def test_the_same_prompt_text_is_stored_once(store: Store) -> None:
    first, second = save_example(store), save_example(store, make_result(model="other/model"))
    assert store.get_run(first).prompt_id == store.get_run(second).prompt_id


def test_a_failed_run_keeps_its_status_and_error(store: Store) -> None:
    result = replace(make_result(n_samples=1), error="CUDA out of memory")
    run = store.get_run(store.save_run(result, [], status="error"))
    assert (run.status, run.error, run.samples[0].steps) == ("error", "CUDA out of memory", [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kind": "chat"}, "kind='chat' is not one of"), ({"status": "ok"}, "status='ok' is not one of")],
)
def test_save_run_refuses_unknown_kind_and_status(store: Store, kwargs: dict, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        store.save_run(make_result(), [], **kwargs)


def test_save_run_refuses_steps_that_do_not_match_the_samples(store: Store) -> None:
    result = make_result()
    with pytest.raises(StoreError, match="steps for 1 samples but the result has 3"):
        store.save_run(result, make_steps(result)[:1])
    assert store.count_runs() == 0


def test_list_runs_is_newest_first_and_summarises_samples(store: Store) -> None:
    ids = [save_example(store, make_result(f"problem {i}")) for i in range(3)]
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ids[::-1]
    assert runs[0].prompt_excerpt == "problem 2"
    assert (runs[0].n_samples, runs[0].answers, runs[0].stop_reasons) == (3, ("12", "13", "14"), ("end",) * 3)
    assert runs[0].thinking_tokens == 20 + 21 + 22
    assert [r.run_id for r in store.list_runs(limit=1, offset=1)] == [ids[1]]


def test_list_runs_searches_prompts_and_answers_case_insensitively(store: Store) -> None:
    apples = save_example(store, make_result("How many APPLES does Tom have?"))
    answer = save_example(store, make_result("Another question", answers=["Paris", "Lyon", "Nice"]))
    save_example(store, make_result("100% of nothing"))
    assert [r.run_id for r in store.list_runs(search="apples")] == [apples]
    assert [r.run_id for r in store.list_runs(search="lyon")] == [answer]
    assert len(store.list_runs(search="%")) == 1  # LIKE wildcards are matched literally
    assert store.list_runs(search="zebra") == []


def test_list_runs_filters_by_model_stop_reason_and_kind(store: Store) -> None:
    cut = store.save_run(make_result("a", model="big", stop_reason="budget_cut"), [], kind="consistency")
    plain = save_example(store, make_result("b"))
    assert [r.run_id for r in store.list_runs(model="big")] == [cut]
    assert [r.run_id for r in store.list_runs(stop_reason="budget_cut")] == [cut]
    assert [r.run_id for r in store.list_runs(kind="playground")] == [plain]
    assert [r.run_id for r in store.list_runs(model="big", kind="playground")] == []


def test_get_run_of_a_missing_run_says_which(store: Store) -> None:
    with pytest.raises(NotFound, match="run 42 does not exist"):
        store.get_run(42)


def test_delete_run_hides_it_but_destroys_no_row_and_no_label(store: Store) -> None:
    doomed, kept = save_example(store), save_example(store)
    for run_id in (doomed, kept):
        samples = store.get_run(run_id).samples
        store.add_label(samples[0].steps[0].step_id, "alice", 1)
        store.set_verdict(samples[0].sample_id, "alice", True)
        store.add_preference(samples[0].sample_id, samples[1].sample_id, "alice")
    tables = ("runs", "samples", "steps", "step_labels", "sample_verdicts", "preferences")
    before = {table: row_count(store, table) for table in tables}
    store.delete_run(doomed, by="bob")
    with pytest.raises(NotFound, match=f"run {doomed} was deleted"):
        store.get_run(doomed)
    assert {table: row_count(store, table) for table in tables} == before  # was 4 -> 2 labels before the fix
    assert [r.run_id for r in store.list_runs()] == [kept]
    assert {item.run_id for item in store.label_queue(annotator="alice")} == {kept}
    assert store.count_runs() == 1
    assert store.get_run(doomed, include_deleted=True).deleted
    assert {s.annotator for s in store.labelled_samples()} == {"alice"}  # both runs' labels still export
    assert len(store.labelled_samples()) == 2
    with pytest.raises(NotFound, match="nothing was deleted"):
        store.delete_run(doomed)


@pytest.mark.parametrize("bad", [0, -1, 2**63, 2**70])
def test_ids_out_of_range_are_not_found_not_an_overflow(store: Store, bad: int) -> None:
    for call in (store.get_run, store.delete_run, store.get_sample, store.run_owner):
        with pytest.raises(NotFound, match="ids are whole numbers"):
            call(bad)


def test_a_very_long_search_is_refused_with_the_limit(store: Store) -> None:
    with pytest.raises(StoreError, match="at most 500") as info:
        store.list_runs(search="x" * 100_000)
    assert "writable" not in str(info.value)


def test_runs_record_their_creator(store: Store) -> None:
    run_id = store.save_run(make_result(), [], created_by="alice")
    assert store.get_run(run_id).created_by == "alice"
    assert store.run_owner(run_id) == "alice"
    assert store.list_runs()[0].created_by == "alice"


def test_a_live_run_is_running_then_finished_with_its_steps(store: Store) -> None:
    result = make_result()
    run_id = store.begin_run(replace(result, samples=[]), created_by="alice")
    assert store.get_run(run_id).status == "running"
    partial = [replace(s, thinking=s.thinking[:3], answer="") for s in result.samples]
    store.checkpoint_run(run_id, partial, 1.5)
    store.checkpoint_run(run_id, result.samples[:1], 2.0)  # replaces the previous checkpoint
    run = store.get_run(run_id)
    assert (run.status, [s.thinking for s in run.samples]) == ("running", [result.samples[0].thinking])
    assert run.samples[0].stop_reason == "error" and "interrupted" in (run.samples[0].error or "")
    store.finish_run(run_id, result, make_steps(result), status="done")
    run = store.get_run(run_id)
    assert (run.status, run.error) == ("done", None)
    assert run.to_result().samples == result.samples
    assert [[st.to_step() for st in s.steps] for s in run.samples] == make_steps(result)
    store.checkpoint_run(run_id, partial, 9.0)  # a late checkpoint can't undo the finish
    assert store.get_run(run_id).to_result().samples == result.samples


def test_runs_left_running_become_interrupted_with_their_partial_text(store: Store) -> None:
    result = make_result()
    live = store.begin_run(replace(result, samples=[]))
    store.checkpoint_run(live, result.samples[:1], 1.0)
    done = save_example(store)
    assert store.interrupt_running_runs(stale_seconds=0) == 1
    run = store.get_run(live)
    assert run.status == "interrupted" and run.samples[0].thinking == result.samples[0].thinking
    assert store.get_run(done).status == "done"
    assert store.interrupt_running_runs(stale_seconds=0) == 0
    assert {r.run_id: r.status for r in store.list_runs()} == {live: "interrupted", done: "done"}


def test_sweeps_group_their_runs(store: Store) -> None:
    sweep_id = store.create_sweep("budgets", {"budgets": [64, 256]}, [{"question": "q1", "gold": "1"}])
    ids = [
        store.save_run(make_result(), [], kind="sweep", sweep_id=sweep_id, label=f"budget {b}", gold="1")
        for b in (64, 256)
    ]
    save_example(store)  # not part of the sweep
    assert [r.run_id for r in store.sweep_runs(sweep_id)] == ids
    assert [r.label for r in store.sweep_runs(sweep_id)] == ["budget 64", "budget 256"]
    (summary,) = store.list_sweeps()
    assert (summary.name, summary.n_runs, summary.settings, summary.problems) == (
        "budgets",
        2,
        {"budgets": [64, 256]},
        [{"question": "q1", "gold": "1"}],
    )


def test_sweep_errors_name_the_sweep(store: Store) -> None:
    with pytest.raises(NotFound, match="sweep 9 does not exist"):
        store.sweep_runs(9)
    with pytest.raises(NotFound, match="sweep 9 does not exist"):
        store.save_run(make_result(), [], sweep_id=9)
    with pytest.raises(StoreError, match="sweep name is empty"):
        store.create_sweep("  ", {}, [])


def test_get_sample_and_list_models(tmp_path):
    from app.domain import GenerationResult, GenerationSettings, SampleResult, Step
    from app.store import NotFound

    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    for model in ("m-b", "m-a", "m-b"):
        sample = SampleResult(0, "t</think>a", "t", "a", 1, 1, "end")
        result = GenerationResult(model, "prompted", GenerationSettings(), [sample], "q")
        run_id = store.save_run(result, [[Step(0, "t", 0, 1)]])
    assert store.list_models() == ["m-a", "m-b"]
    sample_id = store.get_run(run_id).samples[0].sample_id
    got = store.get_sample(sample_id)
    assert got.run_id == run_id and [s.text for s in got.steps] == ["t"]
    with pytest.raises(NotFound, match="sample 999 does not exist"):
        store.get_sample(999)
