"""The CPU sampler (app.engine.sampling): top-p keeps exactly transformers' tokens, the draw follows the
distribution and never picks a filtered token, and both fall back to the full vocabulary when needed."""

from __future__ import annotations

import pytest
import torch
from transformers import TopPLogitsWarper

from app.engine.sampling import CANDIDATES, Draw, TopP

VOCAB = 4096


def _scores(rows: int, spread: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, VOCAB, generator=generator) * spread


@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("spread", [8.0, 3.0, 0.3])  # peaked, typical, flat (nucleus wider than CANDIDATES)
def test_top_p_keeps_exactly_the_tokens_transformers_keeps(top_p, spread):
    scores = _scores(16, spread, seed=int(top_p * 100 + spread * 10))
    ids = torch.zeros(16, 1, dtype=torch.long)
    ours = TopP(top_p)(ids, scores.clone())
    theirs = TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1)(ids, scores.clone())
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    kept = torch.isfinite(ours)
    assert torch.equal(ours[kept], scores[kept])  # kept scores are untouched
    if spread == 0.3:
        assert int(kept.sum(-1).min()) > CANDIDATES  # this case really took the full-sort fallback


def test_top_p_keeps_forced_one_hot_rows():
    scores = torch.full((2, VOCAB), float("-inf"))
    scores[0, 7] = 0.0  # a forced token (budget forcing writes one-hot rows)
    scores[1] = _scores(1, 3.0, seed=1)
    out = TopP(0.9)(torch.zeros(2, 1, dtype=torch.long), scores)
    assert torch.isfinite(out[0]).sum() == 1 and out[0, 7] == 0.0


def test_draw_returns_one_hot_rows_that_follow_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.2])
    scores = torch.full((3000, VOCAB), float("-inf"))
    scores[:, :3] = probs.log()
    torch.manual_seed(0)
    out = Draw()(torch.zeros(3000, 1, dtype=torch.long), scores)
    assert torch.equal(torch.isfinite(out).sum(-1), torch.ones(3000, dtype=torch.long))
    chosen = out.argmax(-1)
    assert int(chosen.max()) <= 2  # never a filtered (-inf) token
    freq = torch.bincount(chosen, minlength=3).float() / 3000
    assert torch.allclose(freq, probs, atol=0.04)  # 3000 draws: 4 sigma is ~0.037


def test_draw_over_more_than_the_candidates_falls_back_to_the_full_vocabulary():
    scores = torch.zeros(4000, VOCAB)  # uniform over all 4096 tokens
    torch.manual_seed(1)
    chosen = Draw()(torch.zeros(4000, 1, dtype=torch.long), scores).argmax(-1)
    assert int(chosen.max()) >= CANDIDATES  # tokens past the first 256 are drawn too
    assert len(torch.unique(chosen)) > 2000


def test_draw_is_reproducible_under_a_seed():
    scores = _scores(8, 2.0, seed=3)
    ids = torch.zeros(8, 1, dtype=torch.long)
    torch.manual_seed(5)
    first = Draw()(ids, scores).argmax(-1)
    torch.manual_seed(5)
    assert torch.equal(Draw()(ids, scores).argmax(-1), first)


@pytest.mark.bundled
def test_the_engine_samples_only_inside_the_nucleus_on_the_bundled_model(bundled_engine):
    """On a CPU the engine draws with these processors: every sampled token had a non-zero probability
    in the captured (temperature + top-p) distribution, samples differ, and a seed reproduces them."""
    from app.domain import GenerationSettings

    settings = GenerationSettings(max_thinking_tokens=24, max_answer_tokens=8, temperature=0.9, top_p=0.8, seed=11)
    settings = settings.for_samples(4)
    first = bundled_engine.generate("What is 17*23?", settings)
    again = bundled_engine.generate("What is 17*23?", settings)
    assert [s.raw_text for s in first.samples] == [s.raw_text for s in again.samples]
    assert len({s.raw_text for s in first.samples}) > 1
    for sample in first.samples:
        trace = sample.tokens
        sampled = [p for p, label in zip(trace.prob, trace.labels, strict=True) if label.islower()]
        assert sampled and all(p is not None and p > 0 for p in sampled)
