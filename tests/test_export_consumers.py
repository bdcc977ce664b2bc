"""Exports read back by their real consumers: ``datasets`` for every format and output, TRL's
own data preparation plus one CPU training step on a tiny random model for the trainable ones.

The tiny model is random (a Qwen3 config a few hundred KB big) with the bundled SmolLM2
tokenizer, so a step takes about a second; what is pinned is that the consumer accepts the
rows and trains on them, not what it learns.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from export_support import build_rows

from app.domain import Step
from app.export.card import render_card
from app.export.lineage import column_names
from app.export.rows import ExportFilters, RowBatch
from app.export.writers import HF_CARD_FILE, HF_DATA_FILE, arrow_schema, write_rows
from app.labelled_data import LabelledSample, PreferencePair, StepRating
from app.store.records import BranchInfo

datasets = pytest.importorskip("datasets")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")


T0 = datetime(2025, 3, 1, 12, 0, 0)
PROMPTS = ["What is 6*7?", "Natalia sold 48 clips in April and half as many in May. How many in total?"]


def _sample(sample_id: int, prompt: str, ratings: list[int | None], marked_correct: bool | None) -> LabelledSample:
    texts = ["First, restate the problem.", "Half of 48 is 24.", "So 48 + 24 = 72.", "Check: 72 - 24 = 48.", "Done."]
    steps = [Step(index=i, text=texts[i % len(texts)] + "\n", start=0, end=0) for i in range(len(ratings))]
    ratings_ = [
        StepRating(step_index=i, rating=r, annotator="alice", created_at=T0 + timedelta(seconds=sample_id * 60 + i))
        for i, r in enumerate(ratings)
        if r is not None
    ]
    return LabelledSample(
        sample_id=sample_id,
        run_id=2 if sample_id == 1 else 1,  # sample 1 comes from run 2, a branch (LINEAGE)
        prompt=prompt,
        thinking="".join(s.text for s in steps),
        answer="The answer is 72." if sample_id % 2 else "42",
        steps=steps,
        ratings=ratings_,
        annotator="alice",
        model="tiny/qwen3",
        marked_correct=marked_correct,
    )


SAMPLES = [
    _sample(1, PROMPTS[1], [1, 1, 1, 1], True),
    _sample(2, PROMPTS[0], [1, -1, None], False),
    _sample(3, PROMPTS[1], [1, 0, 1, None], True),
    _sample(4, PROMPTS[0], [1, None, -1], False),  # skipped by prm (gap), kept by prm800k
]
PAIRS = [
    PreferencePair(PROMPTS[0], "6 times 7 is 42.", "42", "6 times 7 is 41.", "41", "bob", "tiny/qwen3",
                   chosen_run_id=2, rejected_run_id=1),
    PreferencePair(PROMPTS[1], "48 + 24 = 72.", "72", "", "96", "bob", "tiny/qwen3", chosen_run_id=1),
]  # fmt: skip
#: Run 2 is a branch of run 1 (resampled from its sample 0 after step 1); extra columns must not upset consumers.
LINEAGE = {
    2: BranchInfo(run_id=2, parent_run_id=1, parent_sample_index=0, parent_step_index=1, kind="resample", created_at=T0)
}

# (format, conversational)
VARIANTS = [
    ("prm", False),
    ("preference", False),
    ("preference", True),
    ("kto", False),
    ("kto", True),
    ("sft", False),
    ("prm800k", False),
]


def _batch(fmt: str, conversational: bool = False) -> RowBatch:
    records = PAIRS if fmt == "preference" else SAMPLES
    return build_rows(fmt, records, conversational=conversational, lineage=LINEAGE)


def _write(batch: RowBatch, path: Path, output: str) -> None:
    card = render_card(batch, filters=ExportFilters()) if output == "hf" else None
    write_rows(batch.rows, path, output, arrow_schema(batch.format, batch.conversational), card=card)


def _load(path: Path, output: str, cache: Path):
    if output == "jsonl":
        return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))
    if output == "parquet":
        return datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(cache))
    return datasets.load_dataset(str(path), split="train", cache_dir=str(cache))


def _export_and_load(tmp_path: Path, fmt: str, output: str, conversational: bool = False):
    batch = _batch(fmt, conversational)
    path = tmp_path / {"jsonl": "export.jsonl", "parquet": "export.parquet", "hf": "export"}[output]
    _write(batch, path, output)
    return batch, _load(path, output, tmp_path / "cache")


# --- datasets reads every format from every output ---------------------------------------------


@pytest.mark.parametrize("output", ["jsonl", "parquet", "hf"])
@pytest.mark.parametrize(("fmt", "conversational"), VARIANTS)
def test_datasets_loads_every_format_and_output_unchanged(tmp_path, fmt, conversational, output):
    batch, ds = _export_and_load(tmp_path, fmt, output, conversational)
    assert ds.num_rows == len(batch.rows) > 0
    assert ds.to_list() == batch.rows
    kinds = [row.get("branch_kind", row.get("chosen_branch_kind")) for row in batch.rows]
    assert "resample" in kinds and None in kinds  # lineage of branch and ordinary runs both round-trip


def test_hf_folder_has_the_data_file_and_a_card_with_configs(tmp_path):
    batch = _batch("prm")
    _write(batch, tmp_path / "ds", "hf")
    assert (tmp_path / "ds" / HF_DATA_FILE).is_file()
    card = (tmp_path / "ds" / HF_CARD_FILE).read_text()
    assert card.startswith("---\nconfigs:\n- config_name: default\n")
    assert f"| Rows | {len(batch.rows)} |" in card


def test_hf_folder_loads_only_its_own_data_file(tmp_path):
    """A stray parquet file in the folder must not leak into the dataset."""
    folder = tmp_path / "ds"
    _write(_batch("prm"), folder, "hf")
    other = _batch("sft")
    write_rows(other.rows, folder / "data" / "stray.parquet", "parquet", arrow_schema("sft"))
    assert datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "c")).column_names == [
        "prompt",
        "completions",
        "labels",
        *column_names("prm"),
    ]


# --- TRL: tokenisation + one training step ------------------------------------------------------


@pytest.fixture(scope="session")
def tokenizer(smol_tokenizer_dir):
    tok = transformers.AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _tiny_config(tokenizer, **extra):
    return transformers.Qwen3Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )


def _tiny_causal_lm(tokenizer):
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(_tiny_config(tokenizer))


def _policy_and_reference(tokenizer) -> dict:
    """DPO/KTO rebuild a missing reference model from the policy's Hub id, which a model made from
    a config does not have; so pass a copy explicitly."""
    model = _tiny_causal_lm(tokenizer)
    return {"model": model, "ref_model": copy.deepcopy(model)}


def _train_args(tmp_path: Path) -> dict:
    return {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "report_to": [],
        "use_cpu": True,
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
    }


def _single_step_loss(trainer) -> float:
    result = trainer.train()
    assert result.global_step == 1
    return result.training_loss


@pytest.mark.parametrize(
    ("conversational", "output"), [(False, "jsonl"), (True, "hf")], ids=["standard", "conversational"]
)
def test_trl_dpo_tokenises_and_trains_on_the_preference_export(tmp_path, tokenizer, output, conversational):
    _, ds = _export_and_load(tmp_path, "preference", output, conversational)
    trainer = trl.DPOTrainer(
        **_policy_and_reference(tokenizer),
        args=trl.DPOConfig(max_length=256, **_train_args(tmp_path)),
        train_dataset=ds,
        processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(prepared.column_names)
    chosen = tokenizer.decode(prepared[0]["chosen_ids"])
    assert "<think>\n6 times 7 is 42.\n</think>\n\n42" in chosen  # the thinking is trained on, not dropped
    assert "What is 6*7?" in tokenizer.decode(prepared[0]["prompt_ids"])
    assert math.isfinite(_single_step_loss(trainer))


def test_trl_kto_tokenises_and_trains_on_the_kto_export(tmp_path, tokenizer):
    _, ds = _export_and_load(tmp_path, "kto", "parquet")
    trainer = trl.KTOTrainer(
        **_policy_and_reference(tokenizer),
        args=trl.KTOConfig(max_length=256, **_train_args(tmp_path)),
        train_dataset=ds,
        processing_class=tokenizer,
    )
    assert "completion_ids" in trainer.train_dataset.column_names
    assert math.isfinite(_single_step_loss(trainer))


def test_trl_sft_tokenises_and_trains_on_the_sft_export(tmp_path, tokenizer):
    _, ds = _export_and_load(tmp_path, "sft", "hf")
    trainer = trl.SFTTrainer(
        model=_tiny_causal_lm(tokenizer),
        args=trl.SFTConfig(max_length=256, **_train_args(tmp_path)),
        train_dataset=ds,
        processing_class=tokenizer,
    )
    ids = trainer.train_dataset[0]["input_ids"]
    assert "<think>" in tokenizer.decode(ids)
    assert math.isfinite(_single_step_loss(trainer))


def _tiny_token_classifier(tokenizer):
    torch.manual_seed(0)
    return transformers.AutoModelForTokenClassification.from_config(_tiny_config(tokenizer, num_labels=2))


@pytest.mark.skipif(
    importlib.util.find_spec("trl.experimental.prm") is None,
    reason=f"trl {trl.__version__} has no PRMTrainer (removed after 1.13, huggingface/trl#7133); "
    "the stepwise-supervision test below covers the format with transformers alone",
)
def test_trl_prm_trainer_tokenises_and_trains_on_the_prm_export(tmp_path, tokenizer):
    from trl.experimental.prm import PRMConfig, PRMTrainer

    batch, ds = _export_and_load(tmp_path, "prm", "hf")
    features = batch.rows[1]  # [True, False]: a first error
    tokenised = PRMTrainer.tokenize_row(
        features,
        tokenizer=tokenizer,
        step_separator="\n",
        max_length=None,
        max_completion_length=None,
        train_on_last_step_only=False,
        is_eval=False,
    )
    assert [label for label in tokenised["labels"] if label != -100] == [int(x) for x in features["labels"]]

    trainer = PRMTrainer(
        model=_tiny_token_classifier(tokenizer),
        args=PRMConfig(max_length=256, **_train_args(tmp_path)),
        train_dataset=ds,
        processing_class=tokenizer,
    )
    assert {"input_ids", "labels"} <= set(trainer.train_dataset.column_names)
    assert math.isfinite(_single_step_loss(trainer))


def _stepwise_features(row: dict, tokenizer, separator: str = "\n") -> dict:
    """Tokenise one stepwise-supervision row the way PRM trainers read it: prompt, then each step
    followed by the separator; the step's label sits on the separator's last token, -100 elsewhere."""
    input_ids = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    labels = [-100] * len(input_ids)
    separator_ids = tokenizer(separator, add_special_tokens=False)["input_ids"]
    for step, label in zip(row["completions"], row["labels"], strict=True):
        step_ids = tokenizer(step, add_special_tokens=False)["input_ids"] + separator_ids
        input_ids += step_ids
        labels += [-100] * (len(step_ids) - 1) + [int(label)]
    return {"input_ids": input_ids, "labels": labels}


def test_prm_export_trains_a_token_classification_prm(tmp_path, tokenizer):
    """The PRM format end to end without TRL's (removed) PRMTrainer: one label per step, read from
    the loaded dataset, on a token-classification head, through transformers' Trainer."""
    batch, ds = _export_and_load(tmp_path, "prm", "parquet")
    int_lists = datasets.Features(
        {"input_ids": datasets.Sequence(datasets.Value("int64")), "labels": datasets.Sequence(datasets.Value("int64"))}
    )  # without it, map keeps the old bool type of "labels" and -100 becomes True
    ds = ds.map(
        _stepwise_features, fn_kwargs={"tokenizer": tokenizer}, remove_columns=ds.column_names, features=int_lists
    )
    for row, features in zip(batch.rows, ds, strict=True):
        assert [x for x in features["labels"] if x != -100] == [int(label) for label in row["labels"]]
    trainer = transformers.Trainer(
        model=_tiny_token_classifier(tokenizer),
        args=transformers.TrainingArguments(**_train_args(tmp_path)),
        train_dataset=ds,
        data_collator=transformers.DataCollatorForTokenClassification(tokenizer),
    )
    assert math.isfinite(_single_step_loss(trainer))
