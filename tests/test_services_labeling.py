"""The labelling use-cases on a real SQLite store: the issue's done-when flow end to end (three samples labelled,
one with a first error, a preference, prm + preference exported as Parquet and read by ``datasets`` and TRL),
PRM800K's stop after the first error, merge/split keeping other labels, refusals, agreement, and two annotators
writing at once from two threads, each with its own ``Store`` on one file.

Runs are saved through ``services.runs.save_result`` (the real save path: answer extraction + step segmentation)
from hand-written traces, so every sample has a known number of steps; nothing is faked.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.domain import GenerationResult, GenerationSettings, SampleResult
from app.services import agreement as agreement_service
from app.services import labeling
from app.services.exporting import export_dataset
from app.services.runs import save_result
from app.store import NotFound, StoreError, open_store

CLIPS = "Natalia sold 48 clips in April and half as many in May. How many clips did she sell?"
TRACES = [
    (
        "Natalia sold 48 clips in April.\n\nIn May she sold half as many, so 48 / 2 = 24.\n\n"
        "In total 48 + 24 = 72.\n\nCheck: 72 - 24 = 48.",
        "The answer is 72.",
    ),
    (
        "Natalia sold 48 clips in April.\n\nIn May she sold twice as many, so 48 * 2 = 96.\n\nIn total 48 + 96 = 144.",
        "The answer is 144.",
    ),
]
SIX = ("We need 6 times 7.\n\n6 times 7 is 42.", "The answer is 42.")


def _result(prompt: str, traces: list[tuple[str, str]]) -> GenerationResult:
    samples = [
        SampleResult(
            index=i, raw_text=t + a, thinking=t, answer=a, thinking_tokens=40, answer_tokens=5, stop_reason="end"
        )
        for i, (t, a) in enumerate(traces)
    ]
    return GenerationResult(model="tiny/test", format="prompted", settings=GenerationSettings(), samples=samples,
                            prompt=prompt)  # fmt: skip


@pytest.fixture
def data(tiny_runtime):
    """Two runs: the clips prompt with two samples (5 and 4 steps), 6*7 with one (3 steps)."""
    run_a = save_result(tiny_runtime, _result(CLIPS, TRACES))
    run_b = save_result(tiny_runtime, _result("What is 6*7?", [SIX]))
    store = tiny_runtime.store
    good, bad = (s.sample_id for s in store.get_run(run_a).samples)
    six = store.get_run(run_b).samples[0].sample_id
    return store, good, bad, six


def _label_all(store, sample_id: int, annotator: str, ratings: list[int]) -> None:
    view = labeling.open_sample(store, sample_id, annotator)
    for step, rating in zip(view.steps, ratings, strict=True):
        labeling.label_step(store, sample_id, step.step_id, annotator, rating)


def test_done_when_three_samples_a_first_error_a_preference_exported_and_read_by_datasets_and_trl(
    data, tmp_path, smol_tokenizer_dir
):
    datasets = pytest.importorskip("datasets")
    transformers = pytest.importorskip("transformers")
    trl = pytest.importorskip("trl")
    store, good, bad, six = data

    assert labeling.label_queue(store, "alice").progress.text == "0 of 3 samples labelled"
    _label_all(store, good, "alice", [1, 1, 1, 0, 1])
    view = labeling.open_sample(store, bad, "alice")
    labeling.label_step(store, bad, view.steps[0].step_id, "alice", "+1")
    labeling.label_step(store, bad, view.steps[1].step_id, "alice", 0, comment="twice, not half", first_error=True)
    _label_all(store, six, "alice", [1, 1, 1])
    labeling.set_verdict(store, bad, "alice", "incorrect")
    labeling.add_preference(store, good, bad, "alice", reason="half of 48 is 24")

    view = labeling.open_sample(store, bad, "alice")
    assert [s.rating for s in view.steps] == [1, -1, None, None]  # steps after the first error stay unlabelled
    assert view.first_error_index == 1 and view.done and view.verdict is False
    assert view.steps[1].comment == "twice, not half"
    queue = labeling.label_queue(store, "alice")
    assert queue.progress.text == "3 of 3 samples labelled" and all(item.done for item in queue.items)

    prm_path, pref_path = tmp_path / "prm.parquet", tmp_path / "pref.parquet"
    prm = export_dataset(store, "prm", prm_path, annotator="alice")
    pref = export_dataset(store, "preference", pref_path)
    assert (prm.rows, pref.rows) == (3, 1)
    prm_ds = datasets.load_dataset("parquet", data_files=str(prm_path), split="train", cache_dir=str(tmp_path / "c"))
    pref_ds = datasets.load_dataset("parquet", data_files=str(pref_path), split="train", cache_dir=str(tmp_path / "c"))
    rows = {row["prompt"].strip(): row for row in prm_ds}
    assert sorted(len(r["labels"]) for r in prm_ds) == [2, 3, 5]  # the first error cuts its row after step #1
    assert [row for row in prm_ds if len(row["labels"]) == 2][0]["labels"] == [True, False]
    assert rows["What is 6*7?"]["labels"] == [True, True, True]
    assert "48 / 2 = 24" in pref_ds[0]["chosen"] and "48 * 2 = 96" in pref_ds[0]["rejected"]

    tokenizer = transformers.AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    from trl.experimental.prm import PRMTrainer

    first_error_row = next(row for row in prm_ds if len(row["labels"]) == 2)
    tokenised = PRMTrainer.tokenize_row(
        first_error_row, tokenizer=tokenizer, step_separator="\n", max_length=None, max_completion_length=None,
        train_on_last_step_only=False, is_eval=False,
    )  # fmt: skip
    assert [x for x in tokenised["labels"] if x != -100] == [1, 0]

    config = transformers.Qwen3Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        head_dim=16, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = transformers.AutoModelForCausalLM.from_config(config)
    dpo = trl.DPOTrainer(
        model=model,
        ref_model=transformers.AutoModelForCausalLM.from_config(config),
        args=trl.DPOConfig(output_dir=str(tmp_path / "dpo"), report_to=[], use_cpu=True, max_length=256),
        train_dataset=pref_ds,
        processing_class=tokenizer,
    )
    prepared = dpo.train_dataset[0]
    assert "48 / 2 = 24" in tokenizer.decode(prepared["chosen_ids"])
    assert "half as many" in tokenizer.decode(prepared["prompt_ids"])


def test_labels_after_the_first_error_are_refused_until_it_is_relabelled(data):
    store, good, _, _ = data
    steps = labeling.open_sample(store, good, "bob").steps
    labeling.label_step(store, good, steps[1].step_id, "bob", 1, first_error=True)
    assert labeling.open_sample(store, good, "bob").steps[1].rating == -1  # first error forces -1
    with pytest.raises(StoreError, match="after the first error at step #1"):
        labeling.label_step(store, good, steps[2].step_id, "bob", 1)
    labeling.label_step(store, good, steps[1].step_id, "bob", 1)  # a change of mind: no first error now
    labeling.label_step(store, good, steps[2].step_id, "bob", 1)
    history = labeling.label_history(store, steps[1].step_id)
    assert [(h.rating, h.first_error) for h in history] == [(-1, True), (1, False)]  # nothing lost


def test_merge_and_split_keep_the_labels_on_other_steps_and_refuse_labels_on_replaced_steps(data):
    store, good, _, _ = data
    _label_all(store, good, "alice", [1, 0, 1, 1, 1])
    before = labeling.open_sample(store, good, "alice").steps
    merged = labeling.merge_steps(store, good, before[1].step_id)  # with the next step
    head, tail = labeling.split_step(store, good, before[3].step_id, "72 - 24")
    after = labeling.open_sample(store, good, "alice").steps
    assert [s.step_id for s in after] == [before[0].step_id, merged, head, tail, before[4].step_id]
    assert [s.rating for s in after] == [1, None, None, None, 1]
    assert after[2].text == "Check:" and after[3].text == "72 - 24 = 48."
    for replaced in (before[1], before[2], before[3]):
        with pytest.raises(StoreError, match="no longer one of sample"):
            labeling.label_step(store, good, replaced.step_id, "alice", 1)
    with pytest.raises(StoreError, match="replaced by a merge or split"):  # the store's own guard, e.g. in a race
        store.add_label(before[3].step_id, "alice", 1)
    with pytest.raises(StoreError, match="not inside the step"):
        labeling.split_step(store, good, head, "no such words")
    with pytest.raises(StoreError, match="last step"):
        labeling.merge_steps(store, good, after[-1].step_id)


@pytest.mark.parametrize("at", [3, "In May"])
def test_split_refuses_a_step_of_another_sample_whichever_way_the_place_is_given(data, at):
    store, good, bad, _ = data
    other_step = store.steps_for_sample(bad)[1]  # "In May she sold twice as many, ..."
    with pytest.raises(
        labeling.LabelingError, match=f"step {other_step.step_id} is not a current step of sample {good}"
    ):
        labeling.split_step(store, good, other_step.step_id, at)
    assert [s.step_id for s in store.steps_for_sample(bad)][1] == other_step.step_id  # nothing was split


def test_opening_a_sample_looks_it_up_instead_of_scanning_the_queue(data, monkeypatch):
    store, good, _, _ = data

    def no_scan(**_):  # a guard on the real store: the queue must not be read to find a sample's run
        raise AssertionError("open_sample scanned the label queue")

    monkeypatch.setattr(store, "label_queue", no_scan)
    view = labeling.open_sample(store, good, "alice")
    assert view.sample_id == good and len(view.steps) == 5
    assert [c.sample_id for c in labeling.preference_candidates(store, good)]
    with pytest.raises(NotFound, match="sample 999 does not exist"):
        labeling.open_sample(store, 999, "alice")


def test_bad_input_is_refused_with_a_message(data):
    store, good, bad, six = data
    with pytest.raises(StoreError, match="no annotator name"):
        labeling.resolve_annotator("  ", None)
    assert labeling.resolve_annotator("typed", "login") == "login"  # a login wins over a typed name
    with pytest.raises(StoreError, match="rating='2'"):
        labeling.parse_rating("2")
    with pytest.raises(StoreError, match="answer different prompts"):
        labeling.add_preference(store, good, six, "alice")
    with pytest.raises(StoreError, match="does not exist"):
        labeling.open_sample(store, 999, "alice")
    assert labeling.parse_ids("3, 1 > 2") == [3, 1, 2]
    labeling.add_ranking(store, f"{bad}, {good}", "carol")
    assert [(p.chosen_sample_id, p.rejected_sample_id) for p in store.preferences(annotator="carol")] == [(bad, good)]
    assert [c.sample_id for c in labeling.preference_candidates(store, good)] == [bad]


def test_queue_filters_and_next_sample(data):
    store, good, bad, six = data
    _label_all(store, six, "alice", [1, 1, 1])
    queue = labeling.label_queue(store, "alice")
    assert [i.sample_id for i in queue.items][-1] == six  # unlabelled first
    assert labeling.label_queue(store, "alice", prompt_search="6*7").progress.text == "1 of 1 samples labelled"
    assert labeling.label_queue(store, None, model="other").items == []
    assert labeling.next_sample(store, "alice") in (good, bad)
    assert labeling.next_sample(store, "alice", prompt_search="6*7") is None
    first = labeling.next_sample(store, "alice", unlabelled_first=False)  # the view's sort does not matter
    assert first in (good, bad)
    assert labeling.next_sample(store, None, skip=first) == ({good, bad} - {first}).pop()


def test_agreement_reports_kappa_per_pair_and_the_disagreeing_steps(data):
    store, good, _, six = data
    _label_all(store, good, "alice", [1, 1, 1, -1, 1])
    _label_all(store, good, "bob", [1, 1, 1, 1, 1])
    _label_all(store, six, "bob", [1, 0, 1])
    report = agreement_service.agreement(store)
    (pair,) = report.pairs
    assert (pair.annotator_a, pair.annotator_b, pair.overlap) == ("alice", "bob", 5)
    assert pair.raw_agreement == pytest.approx(0.8)
    (d,) = report.disagreements
    assert (d.sample_id, d.step_index, d.rating_a, d.rating_b, d.text) == (good, 3, -1, 1, "Check: 72 - 24 = 48.")
    assert agreement_service.agreement(store, sample_id=six).pairs == []


def test_two_annotators_labelling_one_sample_at_once_from_two_stores_lose_nothing(data, db_url):
    _, good, _, _ = data
    stores = [open_store(db_url), open_store(db_url)]
    step_ids = [s.step_id for s in stores[0].steps_for_sample(good)]
    rounds = 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def annotate(store, name: str) -> None:
        try:
            barrier.wait()
            for r in range(rounds):
                for step_id in step_ids:
                    labeling.label_step(store, good, step_id, name, (r + step_id) % 3 - 1, comment=f"{name} {r}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(s, n)) for s, n in zip(stores, ["alice", "bob"], strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for name in ("alice", "bob"):
        current = stores[1].current_labels(good, name)
        assert {sid: rec.rating for sid, rec in current.items()} == {
            sid: (rounds - 1 + sid) % 3 - 1 for sid in step_ids
        }
        assert all(rec.comment == f"{name} {rounds - 1}" for rec in current.values())
    assert all(len(stores[0].label_history(sid)) == 2 * rounds for sid in step_ids)
    for store in stores:
        store.close()


def test_export_of_an_empty_selection_is_refused_not_an_empty_file(data, tmp_path: Path):
    store, *_ = data
    from app.export.rows import ExportError

    with pytest.raises(ExportError):
        export_dataset(store, "prm", tmp_path / "x.parquet", annotator="nobody")
    assert not (tmp_path / "x.parquet").exists()


def test_labelling_shows_the_first_error_export_uses_and_stops_only_at_a_mark(data):
    store, good, bad, six = data
    _label_all(store, good, "carol", [1, -1, 1, 1, 1])
    view = labeling.open_sample(store, good, "carol")
    assert (view.first_error_index, view.stopped_at, view.done) == (1, None, True)  # a plain -1: labelling went on
    labeling.label_step(store, good, view.steps[3].step_id, "carol", -1, first_error=True)
    view = labeling.open_sample(store, good, "carol")
    assert view.first_error_index == 3 == view.stopped_at  # the mark wins, as in the export
    (row,) = [r for r in labeling_rows(store, "carol")]
    assert row["labels"] == [True, False, True, False]  # the PRM row stops at the marked step


def labeling_rows(store, annotator: str) -> list[dict]:
    from app.export.rows import prm_rows

    return prm_rows(store.labelled_samples(annotator=annotator)).rows


def test_a_rating_outside_minus_one_to_one_is_refused_by_the_store_with_the_step(data):
    store, good, bad, six = data
    step = labeling.open_sample(store, good, "carol").steps[0]
    with pytest.raises(StoreError, match=f"rating=5 for step {step.step_id} is not one of -1"):
        labeling.label_step(store, good, step.step_id, "carol", 5)
