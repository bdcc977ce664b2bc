"""Exports stream (issue 23, item 9): the store answers pages of samples by id, rows go to the file page by page,
and what comes out is what the whole selection built at once gives -- rows, counts, card -- whatever the page size.

A real SQLite store in tmp_path with three annotators, verdicts, preferences, a ranking, automatic labels, a
branch run and a gap; files read back with pyarrow.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_support import make_result, make_steps, save_example

from app.domain import BranchLink
from app.errors import DatabaseBusy, UserError
from app.export.card import render_card
from app.export.dataset_formats import check_options
from app.export.rows import ExportFilters, RowBatch
from app.export.writers import ROW_GROUP_ROWS, arrow_schema, write_parquet
from app.services.exporting import export_dataset, query, run_ids_of
from app.store import Store
from app.store.records import StoredSample

#: (format, options) of the exports compared: every store query, every row builder.
EXPORTS: list[tuple[str, dict[str, Any]]] = [
    ("prm", {}),
    ("prm", {"neutral": "skip"}),
    ("prm", {"source": "auto"}),
    ("prm", {"source": "both", "soft": True}),
    ("preference", {"conversational": True}),
    ("kto", {}),
    ("sft", {}),
    ("prm800k", {}),
]
EXPORT_IDS = [f"{fmt}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for fmt, opts in EXPORTS]


@pytest.fixture
def rich(store: Store) -> list[StoredSample]:
    """Nine samples (a run by tiny/model, one by big, a branch of the first) labelled by one to three people each,
    with a gap, verdicts, a preference, a ranking and automatic labels on every third sample."""
    parent = store.get_run(save_example(store))
    other = store.get_run(save_example(store, make_result(prompt="What is 5 * 5?", model="big")))
    result = make_result()
    link = BranchLink(parent_run_id=parent.run_id, parent_sample_index=0, parent_step_index=1, kind="resample")
    branch = store.get_run(store.save_run(result, make_steps(result), branch=link))
    samples = [*parent.samples, *other.samples, *branch.samples]
    for n, sample in enumerate(samples):
        for who in ("alice", "bob", "carol")[: 1 + n % 3]:
            for k, step in enumerate(sample.steps[: 1 + (n + len(who)) % 4]):
                if (n, k) != (4, 0):  # sample 4 has a gap
                    store.add_label(step.step_id, who, (1, 1, 0, -1)[(n + k) % 4])
            if n % 4 != 3:
                store.set_verdict(sample.sample_id, who, n % 2 == 0)
        if n % 3 == 0:
            softs = [(step.step_id, (k % 3) / 2) for k, step in enumerate(sample.steps)]
            store.add_auto_labels(sample.sample_id, softs, rollouts=4, target="12", target_kind="gold", settings={})
    store.add_preference(parent.samples[0].sample_id, parent.samples[1].sample_id, "alice")
    store.add_ranking([branch.samples[2].sample_id, parent.samples[2].sample_id, branch.samples[0].sample_id], "bob")
    return samples


def whole(store: Store, fmt: str, options: dict[str, Any]) -> RowBatch:
    """The batch of the whole selection built at once, as exports did before they streamed."""
    spec, checked = check_options(fmt, **options)
    records = {name: query(store, name, ExportFilters()) for name in spec.queries(checked)}
    lineage = store.lineage(run_ids_of(record for found in records.values() for record in found))
    return spec.rows(records, options=checked, lineage=lineage)


def jsonl(batch: RowBatch) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in batch.rows)


@pytest.mark.parametrize(("fmt", "options"), EXPORTS, ids=EXPORT_IDS)
def test_every_page_size_writes_what_the_whole_selection_gives(store, rich, tmp_path, fmt, options):
    expected = whole(store, fmt, options)
    for page_size in (1, 2, 256):
        out = tmp_path / f"{page_size}.jsonl"
        summary = export_dataset(store, fmt, out, page_size=page_size, **options)
        assert out.read_text(encoding="utf-8") == jsonl(expected), f"page size {page_size}"
        assert summary.rows == len(expected.rows)
        assert list(summary.skip_reasons.items()) == list(expected.skip_reasons.items())  # order: the message's
        assert list(summary.label_balance.items()) == list(expected.label_balance.items())
        assert (summary.models, summary.annotators) == (expected.models, expected.annotators)


@pytest.mark.parametrize(("fmt", "options"), EXPORTS, ids=EXPORT_IDS)
def test_parquet_and_the_card_of_a_streamed_export_match_the_whole_selection(store, rich, tmp_path, fmt, options):
    expected = whole(store, fmt, options)
    spec, checked = check_options(fmt, **options)
    schema = arrow_schema(fmt, expected.conversational, soft=checked.soft, provenance=checked.provenance)
    export_dataset(store, fmt, tmp_path / "ds", page_size=1, **options)
    table = pq.read_table(tmp_path / "ds" / "data" / "train-00000-of-00001.parquet")
    assert table.equals(pa.Table.from_pylist(expected.rows, schema=schema)) and table.schema.equals(schema)
    card = (tmp_path / "ds" / "README.md").read_text(encoding="utf-8")
    exported = next(line for line in card.splitlines() if line.startswith("| Exported |"))
    when = datetime.strptime(exported.split("|")[2].strip(), "%Y-%m-%d %H:%M UTC").replace(tzinfo=timezone.utc)
    assert card == render_card(expected, created=when)
    if fmt == "prm" and not options:
        assert "6 of 16 rows come from branch runs" in card  # counted page by page


@pytest.mark.parametrize("name", ["labelled_samples", "verdict_samples", "auto_labelled_samples"])
def test_the_sample_queries_page_by_sample_id(store, rich, name):
    every = getattr(store, name)()
    pages, after = [], 0
    while page := getattr(store, name)(after=after, limit=2):
        assert len({record.sample_id for record in page}) <= 2  # a page holds at most `limit` samples...
        pages.append(page)
        after = page[-1].sample_id
    assert [record for page in pages for record in page] == every  # ...with all their annotators
    assert len(pages) >= 2 and all(len({r.sample_id for r in page}) == 2 for page in pages[:-1])


def test_preference_pairs_page_by_preference_id(store, rich):
    every = store.preference_pairs()
    assert len(every) == 4 and [p.preference_id for p in every] == sorted(p.preference_id for p in every)
    first = store.preference_pairs(limit=3)
    assert first == every[:3] and store.preference_pairs(after=first[-1].preference_id, limit=3) == every[3:]


def test_a_parquet_file_is_written_a_row_group_at_a_time(tmp_path):
    taken = []

    def rows():
        for i in range(2 * ROW_GROUP_ROWS + 500):
            taken.append(i)
            yield {"messages": [{"role": "user", "content": f"row {i}"}]} | dict.fromkeys(arrow_schema("sft").names[1:])

    out = tmp_path / "sft.parquet"
    write_parquet(rows(), out, arrow_schema("sft"))
    assert pq.ParquetFile(out).num_row_groups == 3  # was 1: the whole table built in memory, then written
    assert pq.read_table(out).column("messages").to_pylist()[-1] == [{"role": "user", "content": "row 2499"}]


class FailingOnPage:
    """A real store whose export queries refuse from their second page on (the database got busy mid-export)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any, after: int = 0, **kwargs: Any) -> Any:
            if after:
                raise DatabaseBusy("could not read the database: it is busy. Try again in a moment")
            return method(*args, after=after, **kwargs)

        return call if name.endswith(("samples", "pairs")) else method


@pytest.mark.parametrize(("name", "output"), [("prm.jsonl", "jsonl"), ("prm.parquet", "parquet"), ("ds", "hf")])
def test_a_failure_mid_stream_leaves_nothing(store, rich, tmp_path, name, output):
    out = tmp_path / "new" / name
    with pytest.raises(UserError, match="busy"):
        export_dataset(FailingOnPage(store), "prm", out, output=output, page_size=1)
    assert not out.exists() and [p.name for p in (tmp_path / "new").rglob("*")] == []
    export_dataset(store, "prm", out, output=output, page_size=1)  # the same export, once the store answers
    assert out.exists()


def test_an_empty_selection_after_skips_names_them_and_writes_nothing(store, rich, tmp_path):
    """Every page read, none gave a row: the refusal counts the skips of all pages, and no file is opened."""
    out = tmp_path / "sft.jsonl"
    with pytest.raises(UserError, match=r"^No sft rows to write: the \d+ samples matching .* were all skipped \("):
        export_dataset(store, "sft", out, model="big", annotator="carol", page_size=1)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if not p.name.startswith("tracelab.db")] == []
