"""``export_dataset`` end to end: a real SQLite store in tmp_path -> files -> ``datasets``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import datasets
import pytest

from app.domain import GenerationResult, GenerationSettings, SampleResult, Step
from app.export import ExportError
from app.export.lineage import column_names
from app.services.exporting import ExportSummary, export_dataset

PROMPT = "Natalia sold 48 clips in April and half as many in May. How many clips did she sell?"
THOUGHTS = [
    ["She sold 48 in April.", "Half of 48 is 24.", "48 + 24 = 72."],
    ["She sold 48 in April.", "Half of 48 is 12.", "48 + 12 = 60."],
    ["April is 48.", "May is 24.", "Total 72."],
]
ANSWERS = ["72", "60", "72"]


def _result(model: str, thoughts: list[list[str]], answers: list[str]) -> tuple[GenerationResult, list[list[Step]]]:
    samples, steps = [], []
    for i, (lines, answer) in enumerate(zip(thoughts, answers, strict=True)):
        thinking = "\n".join(lines)
        sample_steps, offset = [], 0
        for j, line in enumerate(lines):
            sample_steps.append(Step(index=j, text=line, start=offset, end=offset + len(line)))
            offset += len(line) + 1
        samples.append(
            SampleResult(
                index=i,
                raw_text=f"<think>\n{thinking}\n</think>\n\n{answer}",
                thinking=thinking,
                answer=answer,
                thinking_tokens=20,
                answer_tokens=2,
                stop_reason="end",
                extracted_answer=answer,
            )
        )
        steps.append(sample_steps)
    result = GenerationResult(
        model=model, format="prompted", settings=GenerationSettings(), samples=samples, prompt=PROMPT
    )
    return result, steps


#: conftest's ``store`` on SQLite only: it is the file at ``db_url`` (see test_export_writers, which shares these).
STORE_BACKENDS = ["sqlite"]


@pytest.fixture
def labelled(store):
    """Three samples of one prompt by tiny/qwen3 and one by other/model, labelled by alice and bob.

    alice: sample 0 all +1 (correct), sample 1 +1 then the first error (incorrect), sample 2 with a gap.
    bob: sample 0 +1, 0 (neutral) and a preference of sample 0 over sample 1.
    """
    run_id = store.save_run(*_result("tiny/qwen3", THOUGHTS, ANSWERS))
    other_id = store.save_run(*_result("other/model", THOUGHTS[:1], ANSWERS[:1]))
    s0, s1, s2 = store.get_run(run_id).samples
    for step in s0.steps:
        store.add_label(step.step_id, "alice", 1)
    store.add_label(s1.steps[0].step_id, "alice", 1)
    store.add_label(s1.steps[1].step_id, "alice", -1, comment="24, not 12", first_error=True)
    store.add_label(s2.steps[0].step_id, "alice", 1)
    store.add_label(s2.steps[2].step_id, "alice", 1)  # step 1 left unlabelled -> prm skips the sample
    store.add_label(s0.steps[0].step_id, "bob", 1)
    store.add_label(s0.steps[1].step_id, "bob", 0)
    store.set_verdict(s0.sample_id, "alice", True)
    store.set_verdict(s1.sample_id, "alice", False)
    store.add_preference(s0.sample_id, s1.sample_id, "bob", reason="right arithmetic")
    return {"run": run_id, "other_run": other_id, "samples": (s0, s1, s2)}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


ORDINARY = dict.fromkeys(column_names("prm"))  # the lineage columns of a row from a run that is no branch


def test_prm_export_follows_the_labels_in_the_store(store, labelled, tmp_path):
    out = tmp_path / "prm.jsonl"
    summary = export_dataset(store, "prm", out)
    assert isinstance(summary, ExportSummary)
    assert (summary.path, summary.format, summary.output) == (out, "prm", "jsonl")
    rows = _jsonl(out)
    assert summary.rows == len(rows) == 3  # alice s0, alice s1, bob s0; alice s2 skipped
    assert summary.skipped == 1
    assert summary.skip_reasons == {"unlabelled step before the last labelled one": 1}
    assert {"prompt": PROMPT, "completions": THOUGHTS[1][:2], "labels": [True, False]} | ORDINARY in rows
    assert {"prompt": PROMPT, "completions": THOUGHTS[0], "labels": [True, True, True]} | ORDINARY in rows
    assert {"prompt": PROMPT, "completions": THOUGHTS[0][:2], "labels": [True, True]} | ORDINARY in rows  # bob
    assert summary.label_balance == {"true": 6, "false": 1}
    assert "Exported 3 prm rows" in summary.message and "skipped 1" in summary.message


def test_neutral_policy_reaches_the_rows(store, labelled, tmp_path):
    export_dataset(store, "prm", tmp_path / "prm.jsonl", annotator="bob", neutral="false")
    assert _jsonl(tmp_path / "prm.jsonl") == [
        {"prompt": PROMPT, "completions": THOUGHTS[0][:2], "labels": [True, False]} | ORDINARY
    ]


def test_filters_by_annotator_and_model(store, labelled, tmp_path):
    summary = export_dataset(store, "prm", tmp_path / "a.jsonl", annotator="alice", model="tiny/qwen3")
    assert summary.rows == 2 and summary.annotators == ["alice"] and summary.models == ["tiny/qwen3"]


def test_empty_selection_raises_and_writes_nothing(store, labelled, tmp_path):
    out = tmp_path / "none.jsonl"
    with pytest.raises(ExportError) as info:
        export_dataset(store, "prm", out, model="other/model")
    assert str(info.value) == (
        "No labelled samples match (annotator=any, model=other/model, since=any): "
        "label some steps in the Annotate tab first, or widen the filters."
    )
    assert not out.exists()


def test_since_in_the_future_selects_nothing(store, labelled, tmp_path):
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    with pytest.raises(ExportError, match=r"No preference pairs match \(annotator=any, model=any, since=20"):
        export_dataset(store, "preference", tmp_path / "p.jsonl", since=later)


def test_an_empty_store_refuses_to_export(store, tmp_path):
    with pytest.raises(ExportError, match="label some steps in the Annotate tab first"):
        export_dataset(store, "prm", tmp_path / "prm.jsonl")


def test_preference_hf_folder_loads_with_datasets_and_has_a_card(store, labelled, tmp_path):
    folder = tmp_path / "prefs"
    summary = export_dataset(store, "preference", folder, conversational=True)
    assert summary.output == "hf"
    ds = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.to_list() == [
        {
            "prompt": [{"role": "user", "content": PROMPT}],
            "chosen": [{"role": "assistant", "content": f"<think>\n{chr(10).join(THOUGHTS[0])}\n</think>\n\n72"}],
            "rejected": [{"role": "assistant", "content": f"<think>\n{chr(10).join(THOUGHTS[1])}\n</think>\n\n60"}],
        }
        | dict.fromkeys(column_names("preference"))
    ]
    card = (folder / "README.md").read_text()
    assert "| Rows | 1 |" in card and "`bob`" in card and "`tiny/qwen3`" in card and "DPOTrainer" in card


def test_kto_parquet_from_verdicts(store, labelled, tmp_path):
    out = tmp_path / "kto.parquet"
    summary = export_dataset(store, "kto", out)
    assert summary.output == "parquet"
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(ds["label"]) == [False, True]
    assert summary.label_balance == {"positive": 1, "negative": 1}
    assert all(p == PROMPT + "\n" for p in ds["prompt"])


def test_sft_keeps_the_sample_marked_correct(store, labelled, tmp_path):
    summary = export_dataset(store, "sft", tmp_path / "sft.jsonl")
    assert summary.rows == 1 and summary.skipped == 1
    (row,) = _jsonl(tmp_path / "sft.jsonl")
    assert row["messages"][1]["content"].endswith("</think>\n\n72")


def test_prm800k_keeps_ratings_comments_and_first_error(store, labelled, tmp_path):
    export_dataset(store, "prm800k", tmp_path / "raw.jsonl", annotator="alice")
    rows = {tuple(s["text"] for s in r["steps"]): r for r in _jsonl(tmp_path / "raw.jsonl")}
    wrong = rows[tuple(THOUGHTS[1][:2])]
    assert wrong["finish_reason"] == "found_error"
    assert [(s["rating"], s["first_error"]) for s in wrong["steps"]] == [(1, False), (-1, True)]
    assert wrong["steps"][1]["comment"] == "24, not 12"
    assert wrong["labelled_at_start"] <= wrong["labelled_at_end"]
    assert rows[tuple(THOUGHTS[0])]["finish_reason"] == "solution"
    gap = rows[tuple(THOUGHTS[2])]
    assert [s["rating"] for s in gap["steps"]] == [1, None, 1]


def test_existing_output_is_not_overwritten_without_the_flag(store, labelled, tmp_path):
    out = tmp_path / "prm.jsonl"
    out.write_text("precious\n")
    with pytest.raises(ExportError, match=rf"{out} already exists; add --overwrite"):
        export_dataset(store, "prm", out)
    assert out.read_text() == "precious\n"
    export_dataset(store, "prm", out, overwrite=True)
    assert len(_jsonl(out)) == 3


def test_existing_hf_folder_is_not_overwritten_without_the_flag(store, labelled, tmp_path):
    folder = tmp_path / "ds"
    export_dataset(store, "prm", folder)
    with pytest.raises(ExportError, match="add --overwrite"):
        export_dataset(store, "sft", folder)
    export_dataset(store, "sft", folder, overwrite=True)
    ds = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.column_names == ["messages", *column_names("sft")]


@pytest.mark.parametrize(
    ("name", "output", "kind"),
    [("x.jsonl", None, "jsonl"), ("x.parquet", None, "parquet"), ("x", None, "hf"), ("x.data", "jsonl", "jsonl")],
)
def test_output_kind_from_suffix_or_argument(store, labelled, tmp_path, name, output, kind):
    summary = export_dataset(store, "prm", tmp_path / name, output=output)
    assert summary.output == kind
    assert (tmp_path / name).is_dir() == (kind == "hf")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "orm"}, "format='orm' is not one of"),
        ({"fmt": "prm", "neutral": "maybe"}, "neutral='maybe' is not one of"),
        ({"fmt": "prm", "output": "csv"}, "output='csv' is not one of jsonl, parquet, hf"),
    ],
)
def test_bad_options_are_named(store, tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        export_dataset(store, out=tmp_path / "x.jsonl", **kwargs)


def test_the_cli_and_the_service_read_one_format_table():
    from app.cli import build_parser
    from app.export import DATASET_FORMATS, OPTIONS, get_format

    subcommands = next(a for a in build_parser()._actions if a.dest == "command").choices
    flags = {a.dest: a for a in subcommands["export"]._actions}
    assert (
        list(flags["export_format"].choices) == list(DATASET_FORMATS) == ["prm", "preference", "kto", "sft", "prm800k"]
    )
    assert {f.query for f in DATASET_FORMATS.values()} == {"labelled_samples", "preference_pairs", "verdict_samples"}
    assert {name: [o.name for o in f.options] for name, f in DATASET_FORMATS.items()} == {
        "prm": ["neutral", "source", "soft"], "preference": ["conversational"], "kto": ["conversational"],
        "sft": [], "prm800k": [],
    }  # fmt: skip
    for name, option in OPTIONS.items():  # every option is a flag with the table's values and default
        assert (list(flags[name].choices or ()), flags[name].default) == (list(option.choices), option.default)
    assert flags["source"].help.startswith("prm: ") and flags["conversational"].help.startswith("preference/kto: ")
    with pytest.raises(ValueError, match="format='orm' is not one of prm, preference, kto, sft, prm800k"):
        get_format("orm")


def test_options_are_checked_in_one_place_with_the_fix(store, tmp_path):
    from app.errors import InvalidInput, UserError
    from app.export import check_options

    with pytest.raises(ExportError, match="^'sofft' is not an export option; the options are neutral, conversational"):
        check_options("prm", sofft=True)
    with pytest.raises(ExportError, match="works with format prm only"):
        export_dataset(store, "kto", tmp_path / "k.jsonl", source="both")
    spec, options = check_options("kto", neutral="skip", conversational=1)  # kto has no use for neutral: ignored
    assert (spec.name, options.neutral, options.conversational) == ("kto", "skip", True)
    assert issubclass(ExportError, InvalidInput) and issubclass(ExportError, UserError)
    assert not (tmp_path / "k.jsonl").exists()


def test_an_unwritable_out_is_a_refusal_naming_the_path(store, labelled, tmp_path):

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    out = blocker / "sub" / "prm.jsonl"  # its folder can't be made: a file stands where it would go
    with pytest.raises(ExportError, match=rf"^{out} could not be written \(.+\); choose a path in a folder you can"):
        export_dataset(store, "prm", out)
    with pytest.raises(ExportError, match=rf"^{blocker / 'ds'} could not be written"):
        export_dataset(store, "prm", blocker / "ds")  # an HF folder under a file
    assert blocker.read_text() == "not a folder\n"
