"""The README.md dataset card of an exported Hugging Face dataset folder.

Owns the card's YAML front matter (``configs:`` so ``datasets.load_dataset(folder)`` finds the
data file, plus Hub tags) and its Markdown body: counts, label balance, models, annotators,
date, the row format, the branch lineage columns and how to load it with datasets and TRL. A pure function of an
:class:`~app.export.tally.ExportTally` (what a streamed export counted) or of a whole
:class:`~app.export.rows.RowBatch`; it writes nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone

import yaml

from app.export.dataset_formats import DATASET_FORMATS
from app.export.lineage import LINEAGE_COLUMNS, LINEAGE_HELP
from app.export.rows import ExportFilters, RowBatch
from app.export.tally import ExportTally
from app.export.writers import HF_DATA_FILE

#: Hub tags per format, next to "tracelab" and "trl".
_TAGS: dict[str, list[str]] = {
    "prm": ["prm", "process-reward-model", "stepwise-supervision"],
    "preference": ["dpo", "preference"],
    "kto": ["kto", "unpaired-preference"],
    "sft": ["sft", "reasoning"],
    "prm800k": ["prm", "prm800k", "process-supervision"],
}

_SHAPES: dict[str, str] = {
    "prm": '{"prompt": "...", "completions": ["step 1", "step 2", ...], "labels": [true, false, ...]}',
    "preference": '{"prompt": "...\\n", "chosen": "<think>\\n...\\n</think>\\n\\nanswer", "rejected": "..."}',
    "preference/conversational": (
        '{"prompt": [{"role": "user", "content": "..."}],\n'
        ' "chosen": [{"role": "assistant", "content": "<think>\\n...\\n</think>\\n\\nanswer"}],\n'
        ' "rejected": [{"role": "assistant", "content": "..."}]}'
    ),
    "kto": '{"prompt": "...\\n", "completion": "<think>\\n...\\n</think>\\n\\nanswer", "label": true}',
    "kto/conversational": (
        '{"prompt": [{"role": "user", "content": "..."}],\n'
        ' "completion": [{"role": "assistant", "content": "..."}], "label": true}'
    ),
    "sft": (
        '{"messages": [{"role": "user", "content": "..."},\n'
        '              {"role": "assistant", "content": "<think>\\n...\\n</think>\\n\\nanswer"}]}'
    ),
    "prm800k": (
        '{"prompt": "...", "model": "...", "annotator": "...",\n'
        ' "steps": [{"index": 0, "text": "...", "source": "thinking", "rating": 1, "comment": "",\n'
        '            "first_error": false, "labelled_at": "2025-01-01T12:00:00"}, ...],\n'
        ' "finish_reason": "found_error | solution | partial",\n'
        ' "labelled_at_start": "...", "labelled_at_end": "..."}'
    ),
}

_TRL: dict[str, str] = {
    "prm": """\
# TRL removed PRMTrainer after v1.13 (huggingface/trl#7133); it needs `pip install "trl<=1.13"`.
from transformers import AutoModelForTokenClassification, AutoTokenizer
from trl.experimental.prm import PRMConfig, PRMTrainer

model_id = "Qwen/Qwen2.5-0.5B"  # any model with a token-classification head
model = AutoModelForTokenClassification.from_pretrained(model_id, num_labels=2)
trainer = PRMTrainer(
    model=model,
    args=PRMConfig(output_dir="prm", step_separator="\\n"),
    train_dataset=ds,
    processing_class=AutoTokenizer.from_pretrained(model_id),
)
trainer.train()""",
    "preference": """\
from trl import DPOConfig, DPOTrainer  # RewardTrainer reads this format too

trainer = DPOTrainer(model="Qwen/Qwen3-0.6B", args=DPOConfig(output_dir="dpo"), train_dataset=ds)
trainer.train()""",
    "kto": """\
from trl import KTOConfig, KTOTrainer

trainer = KTOTrainer(model="Qwen/Qwen3-0.6B", args=KTOConfig(output_dir="kto"), train_dataset=ds)
trainer.train()""",
    "sft": """\
from trl import SFTConfig, SFTTrainer

trainer = SFTTrainer(model="Qwen/Qwen3-0.6B", args=SFTConfig(output_dir="sft"), train_dataset=ds)
trainer.train()""",
    "prm800k": """\
# No TRL trainer reads this format directly: it keeps the raw -1/0/+1 ratings.
# Re-export with format "prm" for TRL stepwise supervision, or map it yourself, e.g.:
def to_stepwise(row):
    steps = row["steps"]
    cut = next((i for i, s in enumerate(steps) if s["rating"] == -1), len(steps) - 1)
    steps = steps[: cut + 1]
    return {"completions": [s["text"].strip() for s in steps], "labels": [s["rating"] != -1 for s in steps]}""",
}


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _names(values: list[str]) -> str:
    return ", ".join(f"`{v.replace('`', '')}`" for v in values) or "-"


def _balance(tally: ExportTally) -> tuple[str, str]:
    """(row title, text) of the label balance line for this format."""
    b = tally.label_balance
    if tally.format == "prm":
        total = b.get("true", 0) + b.get("false", 0)
        share = f" ({100 * b.get('true', 0) / total:.0f}% true)" if total else ""
        return "Step labels", f"true {b.get('true', 0)} · false {b.get('false', 0)}{share}"
    if tally.format == "kto":
        total = b.get("positive", 0) + b.get("negative", 0)
        share = f" ({100 * b.get('positive', 0) / total:.0f}% positive)" if total else ""
        return (
            "Labels",
            f"positive (desirable) {b.get('positive', 0)} · negative (undesirable) {b.get('negative', 0)}{share}",
        )
    if tally.format == "prm800k":
        return "Step ratings", f"+1: {b.get('+1', 0)} · 0: {b.get('0', 0)} · -1: {b.get('-1', 0)}"
    if tally.format == "preference":
        return "Pairs", str(b.get("pairs", tally.rows))
    return "Samples marked correct", str(b.get("correct", tally.rows))


def lineage_section(tally: ExportTally) -> list[str]:
    """The card's description of the branch lineage columns, with how many rows come from branch runs."""
    side = (
        " A preference row has them for each side, prefixed `chosen_` and `rejected_`."
        if tally.format == "preference"
        else ""
    )
    return [
        "## Branch lineage columns",
        "",
        "Samples from a branch run (tracelab's *Branch here*, step credit, auto labels or *Think longer* "
        f"continue a stored trace) say which one. {tally.from_branches} of {tally.rows} rows come from "
        f"branch runs; the columns are null for the others.{side}",
        "",
        "| Column | Meaning |",
        "|---|---|",
        *(f"| `{name}` | {_cell(LINEAGE_HELP[name])} |" for name in LINEAGE_COLUMNS),
        "",
    ]


def render_card(
    counts: ExportTally | RowBatch, *, filters: ExportFilters | None = None, created: datetime | None = None
) -> str:
    """The full README.md text (YAML front matter + Markdown) for an HF dataset folder."""
    tally = counts if isinstance(counts, ExportTally) else ExportTally.of(counts)
    created = created or datetime.now(timezone.utc)
    front = {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": HF_DATA_FILE}]}],
        "tags": ["tracelab", "trl", *_TAGS.get(tally.format, [])],
        "size_categories": [size_category(tally.rows)],
    }
    shape_key = (
        f"{tally.format}/conversational"
        if tally.conversational and tally.format in ("preference", "kto")
        else tally.format
    )
    skipped = str(tally.skipped)
    if tally.skip_reasons:
        skipped += f" ({tally.skip_summary})"
    balance_title, balance = _balance(tally)
    table = [
        ("Format", f"`{tally.format}`{' (conversational)' if shape_key.endswith('conversational') else ''}"),
        ("Rows", str(tally.rows)),
        ("Skipped", skipped),
        (balance_title, balance),
        ("Models", _names(tally.models)),
        ("Annotators", _names(tally.annotators)),
        ("Selection", (filters or ExportFilters()).describe()),
        ("Exported", created.strftime("%Y-%m-%d %H:%M %Z").strip()),
    ]
    if tally.format == "prm":
        table.append(
            (
                "Neutral (0) steps",
                {"true": "labelled true", "false": "labelled false"}.get(
                    tally.neutral, "not labelled (joined to the next step)"
                ),
            )
        )
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# tracelab export: {tally.format}",
        "",
        f"{DATASET_FORMATS[tally.format].description}. Exported from tracelab annotations.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {_cell(v)} |" for k, v in table),
        "",
        "## Row format",
        "",
        "```json",
        _SHAPES[shape_key],
        "```",
        "",
        "Completions keep the model's thinking as `<think>\\n...\\n</think>\\n\\nanswer` (just the answer when it did not think).",
        "",
        *lineage_section(tally),
        "## Load it",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("path/to/this/folder", split="train")  # or the Hub repo id once pushed',
        "```",
        "",
        "## Train with TRL",
        "",
        "```python",
        _TRL[tally.format],
        "```",
        "",
    ]
    return "\n".join(lines)
