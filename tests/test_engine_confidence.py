"""Per-token confidence capture: scripted scores for the arithmetic, then real generate() on the tiny and
bundled models (alignment with the tokens, forced tokens, identical draws with capture on and off)."""

from __future__ import annotations

import math

import pytest
import torch

from app.domain import GenerationSettings
from app.engine.confidence import SOURCE_GREEDY, SOURCE_SAMPLED, ConfidenceCapture, sampling_chain
from app.engine.generation import Engine
from app.engine.pieces import token_pieces


def test_capture_measures_entropy_top_alternatives_and_the_chosen_probability():
    forced = [[False, False], [False, True]]  # per step, per row: row 1 is forced at step 1
    cap = ConfidenceCapture(2, lambda: forced[len(cap.entropy)])
    uniform4 = torch.full((2, 10), -float("inf"))
    uniform4[:, :4] = 0.0  # four equally likely tokens: entropy ln 4, each p = 0.25
    ids = torch.zeros((2, 3), dtype=torch.long)
    cap(ids, uniform4.clone())
    peaked = torch.tensor([[0.0] * 9 + [5.0], [5.0] + [0.0] * 9])
    cap(torch.cat([ids, torch.tensor([[2], [3]])], 1), peaked)
    cap.finish(torch.tensor([[9], [1]]))
    traces = cap.traces([([2, 9], ["t", "t"]), ([3, 1], ["t", "a"])], "test")
    a, b = traces
    assert a.entropy[0] == pytest.approx(math.log(4), abs=1e-4) and a.prob[0] == pytest.approx(0.25, abs=1e-4)
    p9 = math.exp(5) / (math.exp(5) + 9)
    assert a.prob[1] == pytest.approx(p9, abs=1e-4) and a.top_ids[1][0] == 9
    assert a.top_probs[1][0] == pytest.approx(p9, abs=1e-4) and len(a.top_ids[1]) == 5
    assert b.labels == "tA" and b.prob[1] is None and b.entropy[1] is None and b.top_ids[1] == []
    assert b.prob[0] == pytest.approx(0.25, abs=1e-4)


def test_sampling_chain_moves_the_warpers_out_of_generate():
    warpers, overrides = sampling_chain(0.7, 0.9)
    assert [type(w).__name__ for w in warpers] == ["TemperatureLogitsWarper", "TopPLogitsWarper"]
    assert overrides == {"temperature": 1.0, "top_p": 1.0}
    assert sampling_chain(0.0, 0.9) == ([], {})


def _check_aligned(sample, tokenizer):
    t = sample.tokens
    assert t is not None and len(t) == len(t.labels) == len(t.prob) == len(t.entropy) == len(t.pieces) > 0
    assert "".join(t.pieces) == sample.raw_text == tokenizer.decode(t.token_ids, skip_special_tokens=False)
    for j, forced in enumerate(t.forced):
        if forced:
            assert t.prob[j] is None and t.entropy[j] is None
        else:
            assert 0 < t.prob[j] <= 1 and t.entropy[j] >= 0
            assert t.top_probs[j] == sorted(t.top_probs[j], reverse=True)
            assert t.prob[j] <= t.top_probs[j][0] + 1e-4
            assert all(i in t.vocab for i in t.top_ids[j])
    thinking = sum(1 for c in t.labels if c in "tT")
    assert thinking == sample.thinking_tokens
    assert sum(1 for c in t.labels if c in "aA") == sample.answer_tokens


def test_greedy_run_picks_the_top_alternative_and_flags_the_forced_close(tiny_engine):
    settings = GenerationSettings(effort=None, max_thinking_tokens=10, max_answer_tokens=6)
    result = tiny_engine.generate("What is 2+2?", settings)
    sample = result.samples[0]
    _check_aligned(sample, tiny_engine.tokenizer)
    t = sample.tokens
    assert t.source == SOURCE_GREEDY and sample.stop_reason == "budget_cut"
    assert t.labels.startswith("t" * 10) and "C" in t.labels  # the cut's close tag is forced, not sampled
    for j, forced in enumerate(t.forced):
        if not forced:
            assert t.token_ids[j] == t.top_ids[j][0]


def test_sampled_draws_are_identical_with_capture_on_and_off(tiny_loaded, tiny_engine):
    settings = GenerationSettings(effort=None, max_thinking_tokens=12, max_answer_tokens=5, seed=3).for_samples(3)
    on = tiny_engine.generate("hello", settings)
    off = Engine(tiny_loaded, capture_tokens=False).generate("hello", settings)
    assert [s.raw_text for s in on.samples] == [s.raw_text for s in off.samples]
    assert all(s.tokens is None for s in off.samples)
    for sample in on.samples:
        _check_aligned(sample, tiny_engine.tokenizer)
        assert sample.tokens.source == SOURCE_SAMPLED


def test_token_pieces_keep_multibyte_characters_whole(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    text = "Wait — 17×23 = 391 🤔 <think>ok</think> naïve"
    ids = tok.encode(text, add_special_tokens=False)
    pieces = token_pieces(tok, ids)
    assert "".join(pieces) == tok.decode(ids) and len(pieces) == len(ids)
    assert "\ufffd" not in "".join(pieces)


def test_bundled_model_flags_injected_waits_and_the_json_carries_the_lists(bundled_engine):
    settings = GenerationSettings(effort=None, max_thinking_tokens=40, min_thinking_tokens=30, max_answer_tokens=12)
    result = bundled_engine.generate("What is 17*23?", settings)
    sample = result.samples[0]
    _check_aligned(sample, bundled_engine.tokenizer)
    t = sample.tokens
    if sample.continuations:  # each injected "Wait" is flagged as forced thinking
        assert "T" in t.labels
    row = sample.to_dict()  # what the run JSON carries per sample
    assert len(row["token_entropy"]) == len(row["token_prob"]) == len(row["token_top"]) == len(t)
    unforced = [j for j, f in enumerate(row["token_forced"]) if not f]
    assert unforced and all(isinstance(row["token_entropy"][j], float) for j in unforced)
    assert all(len(row["token_top"][j]) == 5 for j in unforced)


def test_token_data_off_setting_reaches_the_engine(tmp_path, cache_dir):
    from app.services.runtime import Runtime
    from app.settings import AppSettings

    settings = AppSettings.from_env({"TRACELAB_TOKEN_DATA": "off"}, model="tiny", cache_dir=str(cache_dir))
    rt = Runtime.start(settings, with_store=False)
    result = rt.engine.generate("hello", GenerationSettings(effort=None, max_thinking_tokens=4, max_answer_tokens=2))
    assert result.samples[0].tokens is None
    with pytest.raises(ValueError, match="token_data='maybe' is not one of on, off"):
        AppSettings.from_env({"TRACELAB_TOKEN_DATA": "maybe"})
