"""Sampling on the CPU without sorting the vocabulary: an exact top-p over the top candidates, and the draw.

Owns two logits processors the local engine puts at the end of its chain when it samples on a CPU:

* :class:`TopP` keeps the same tokens as transformers' ``TopPLogitsWarper`` (the smallest set of most
  probable tokens whose mass reaches ``top_p``), but finds them among the ``CANDIDATES`` most probable
  tokens instead of sorting all 49k scores; when the nucleus is wider than that it sorts, as before.
* :class:`Draw` samples each row's token from the candidates and returns a one-hot score row (0 at the
  draw, -inf elsewhere), so ``generate`` runs greedy and takes that token. transformers' own draw,
  ``torch.multinomial`` over the whole vocabulary, costs as much as a quarter of a decode step.

Why: profiled on the bundled model at k=8, the full sort (top-p) and the full-vocabulary draw took 8.7 and
6.6 ms of a 57 ms step, 1.1 and 0.8 ms at k=1 (bench/cpu_bench.py, README Benchmarks). Seeded runs stay
reproducible (the draw uses torch's global generator, seeded by the engine); they draw different tokens
than transformers' sampler would for the same seed. Knows nothing about budgets, prompts or storage.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, TopPLogitsWarper

#: How many of the most probable tokens top-p and the draw look at before falling back to the full vocabulary.
CANDIDATES = 256


class TopP(LogitsProcessor):
    """Top-p (nucleus) filtering: token kept iff the mass of the tokens more probable than it is < ``top_p``."""

    def __init__(self, top_p: float, candidates: int = CANDIDATES) -> None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p={top_p} must be in (0, 1]")
        self.top_p = top_p
        self.candidates = candidates
        self._full = TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(self.candidates, scores.shape[-1])
        values, ids = scores.topk(k, dim=-1)  # most probable first
        probs = (values - scores.logsumexp(dim=-1, keepdim=True)).exp()
        reached = probs.cumsum(dim=-1)
        if bool((reached[:, -1] < self.top_p).any()):  # the nucleus reaches past the candidates: sort all
            return self._full(input_ids, scores)
        keep = (reached - probs) < self.top_p
        filtered = values.masked_fill(~keep, float("-inf"))
        return torch.full_like(scores, float("-inf")).scatter_(-1, ids, filtered)


class Draw(LogitsProcessor):
    """Draw one token per row from ``softmax(scores)``; return scores that are 0 there and -inf elsewhere."""

    def __init__(self, candidates: int = CANDIDATES) -> None:
        self.candidates = candidates

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(self.candidates, scores.shape[-1])
        values, ids = scores.topk(k, dim=-1)
        if k < scores.shape[-1] and bool(torch.isfinite(values[:, -1]).any()):  # more than k candidates
            choice = torch.multinomial(scores.float().softmax(dim=-1), 1)
        else:
            choice = ids.gather(-1, torch.multinomial(values.float().softmax(dim=-1), 1))
        return torch.full_like(scores, float("-inf")).scatter_(-1, choice, 0.0)
