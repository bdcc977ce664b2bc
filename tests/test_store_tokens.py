"""Per-token confidence in the store: packed compactly, read back intact, absent for older runs, deleted with
its run. Real SQLite files (and Postgres when TRACELAB_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import pytest
from store_support import BACKENDS, fresh_url, make_result, make_steps, row_count

from app.domain import TokenTrace
from app.services.runs import run_json
from app.store import open_store


def _trace() -> TokenTrace:
    return TokenTrace(
        token_ids=[10, 11, 12, 13],
        labels="ttCa",
        prob=[0.5, 0.123456, None, 0.999],
        entropy=[1.25, 3.5, None, 0.0],
        top_ids=[[10, 7, 3, 2, 1], [4, 11], [], [13, 1, 2, 3, 4]],
        top_probs=[[0.5, 0.2, 0.1, 0.1, 0.05], [0.6, 0.123456], [], [0.999, 0.0, 0.0, 0.0, 0.0]],
        source="sampled",
        pieces=["<b>", " x", "</think>", "&amp;"],
        vocab={10: "<b>", 7: "'", 3: '"', 2: "a", 1: "b", 4: "c", 11: " x", 13: "&amp;"},
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_data_round_trips_at_float16_precision(backend, tmp_path):
    store = open_store(fresh_url(backend, tmp_path))
    result = make_result(n_samples=2)
    result.samples[0].tokens = _trace()
    run_id = store.save_run(result, make_steps(result))
    run = store.get_run(run_id)
    got, none = run.samples[0].tokens, run.samples[1].tokens
    assert none is None  # a sample without capture has no row, and says so
    want = _trace()
    assert got.token_ids == want.token_ids and got.labels == want.labels and got.pieces == want.pieces
    assert got.prob[2] is None and got.entropy[2] is None
    assert got.prob[1] == pytest.approx(0.123456, abs=2e-4) and got.entropy[1] == pytest.approx(3.5)
    assert got.top_ids == want.top_ids and got.top_probs[1] == pytest.approx([0.6, 0.123456], abs=2e-4)
    assert got.vocab == want.vocab and got.source == "sampled"
    assert store.get_sample(run.samples[0].sample_id).tokens == got
    json_row = run_json(run)["samples"][0]
    assert json_row["token_forced"] == [False, False, True, False]
    assert [text for text, _ in json_row["token_top"][1]] == ["c", " x"]
    assert run_json(run)["samples"][1]["token_entropy"] is None  # "no token data for this run"
    store.delete_run(run_id)  # a soft delete (issue 8): the run is hidden, its data -- labels, tokens -- kept
    assert row_count(store, "sample_tokens") > 0


def test_token_data_is_compact(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'lab.db'}")
    result = make_result(n_samples=1)
    n = 2000
    result.samples[0].tokens = TokenTrace(
        token_ids=list(range(n)),
        labels="t" * n,
        prob=[0.5] * n,
        entropy=[1.0] * n,
        top_ids=[[1, 2, 3, 4, 5]] * n,
        top_probs=[[0.5, 0.2, 0.1, 0.1, 0.1]] * n,
        source="s",
        pieces=["ab"] * n,
        vocab={i: "x" for i in range(1, 6)},
    )
    store.save_run(result, [])
    with store.engine.connect() as conn:
        from sqlalchemy import text

        size = conn.execute(
            text(
                "SELECT length(token_ids)+length(prob)+length(entropy)+length(top_ids)+length(top_probs) FROM sample_tokens"
            )
        ).scalar_one()
    assert size == n * (4 + 2 + 2 + 5 * 4 + 5 * 2)  # 38 bytes a token


def test_a_live_run_keeps_its_token_data_when_it_finishes(tmp_path):
    """The Playground saves live (begin, checkpoints, finish): the finished run must keep its token data, so the
    lens and click-to-branch work when it is reopened from History."""
    store = open_store(fresh_url("sqlite", tmp_path))
    result = make_result(n_samples=2)
    run_id = store.begin_run(result)
    result.samples[1].tokens = _trace()
    store.finish_run(run_id, result, make_steps(result))
    run = store.get_run(run_id)
    assert run.samples[0].tokens is None and run.samples[1].tokens.pieces == _trace().pieces
