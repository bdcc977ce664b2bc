"""Per-token confidence, captured while generating: a ``LogitsProcessor`` at the end of the chain.

For every generated position of every batch row it keeps the probability of the token that was
actually chosen, the entropy (nats) of the distribution it was chosen from, and that distribution's
top alternatives. "The distribution it was chosen from" means:

* sampling (temperature > 0): the scores after budget forcing's masks, temperature and top-p,
  i.e. exactly what ``generate`` draws from. To see them, :func:`sampling_chain` moves the
  temperature and top-p warpers out of ``generate``'s own list into ours (same warpers, same
  order, so the draws are bit-identical) and puts :class:`ConfidenceCapture` after them (on a CPU the
  engine also draws itself, after the capture: :mod:`app.engine.sampling`);
* greedy decoding (temperature 0): the model's own distribution at temperature 1 after the budget
  masks -- the argmax is the same, and a point mass would say nothing.

Tokens forced by budget forcing (close tag, answer cue, "Wait") come from a one-hot distribution;
their confidence would be meaningless, so they are flagged as forced and carry no probability or
entropy. No second forward pass: this reads the scores ``generate`` already computed. Everything stays
on the device during generation (no per-step sync) and is moved to the CPU once at the end.
Knows nothing about prompts, storage or UI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, TemperatureLogitsWarper, TopPLogitsWarper

from app.domain import TOP_ALTERNATIVES, TokenTrace
from app.engine.sampling import TopP

#: How the captured distribution is described in the run JSON and the lens.
SOURCE_SAMPLED = "sampled distribution (after budget masks, temperature and top-p)"
SOURCE_GREEDY = "model distribution at temperature 1 (greedy decoding)"


class ConfidenceCapture(LogitsProcessor):
    """Record entropy, top-k and (one step later) the chosen token's probability for each row.

    ``forced_rows`` is called once per step and returns, per row, whether this step's token is
    forced (budget forcing); it is read before any other processor could change its answer.
    """

    def __init__(self, batch_size: int, forced_rows: Callable[[], Sequence[bool]], top: int = TOP_ALTERNATIVES):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.batch_size = batch_size
        self.forced_rows = forced_rows
        self.top = top
        self.entropy: list[torch.Tensor] = []  # [k] per step
        self.top_probs: list[torch.Tensor] = []  # [k, top]
        self.top_ids: list[torch.Tensor] = []  # [k, top]
        self.chosen: list[torch.Tensor] = []  # [k] per step, filled one step late
        self.forced: list[list[bool]] = []  # per step, per row
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # last step's scores and log-normaliser
        self.seconds = 0.0  # wall time spent in this processor (CPU: its real cost; CUDA: launch time only)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        started = time.perf_counter()
        self._resolve(input_ids[:, -1])
        self.forced.append([bool(f) for f in self.forced_rows()])
        # A few passes over the vocabulary and no log over it (torch.special.entr costs ~3x more):
        # H = lse - sum(p * s), with 0 * -inf (a masked token) counted as 0 by nansum.
        s = scores.float()
        lse = torch.logsumexp(s, dim=-1, keepdim=True)
        probs = torch.exp(s - lse)
        self.entropy.append(lse.squeeze(-1) - torch.nansum(probs * s, dim=-1))
        top = s.topk(min(self.top, s.shape[-1]), dim=-1)
        self.top_probs.append(torch.exp(top.values - lse))
        self.top_ids.append(top.indices)
        self._pending = (s, lse)  # generate never writes to the scores after the processors
        self.seconds += time.perf_counter() - started
        return scores

    def _resolve(self, last_tokens: torch.Tensor) -> None:
        if self._pending is not None:
            s, lse = self._pending
            chosen = s.gather(1, last_tokens.view(-1, 1).to(s.device)) - lse
            self.chosen.append(chosen.squeeze(1))
            self._pending = None

    def finish(self, output_ids: torch.Tensor) -> None:
        """Resolve the last step from ``generate``'s output (its token was chosen after the last call)."""
        if self._pending is not None and output_ids.shape[1] > 0:
            self._resolve(output_ids[:, -1])

    def traces(self, rows: Sequence[tuple[list[int], list[str]]], source: str) -> list[TokenTrace]:
        """One :class:`TokenTrace` per row, given each row's generated ids and token labels (t/c/a)."""
        steps = len(self.entropy)
        if steps == 0:
            return [TokenTrace.empty(source) for _ in rows]
        entropy = torch.stack(self.entropy, dim=1).cpu().tolist()  # [k][steps]
        top_p = torch.stack(self.top_probs, dim=1).cpu().tolist()  # [k][steps][top]
        top_i = torch.stack(self.top_ids, dim=1).cpu().tolist()
        chosen = torch.stack(self.chosen, dim=1).cpu().tolist() if self.chosen else [[] for _ in range(len(rows))]
        out = []
        for r, (ids, labels) in enumerate(rows):
            n = min(len(ids), steps)
            forced = [self.forced[j][r] for j in range(n)]
            out.append(
                TokenTrace(
                    token_ids=list(ids[:n]),
                    labels="".join(lab.upper() if f else lab for lab, f in zip(labels[:n], forced, strict=True)),
                    prob=[
                        None if forced[j] or j >= len(chosen[r]) else _finite(math.exp(chosen[r][j])) for j in range(n)
                    ],
                    entropy=[None if forced[j] else _finite(entropy[r][j]) for j in range(n)],
                    top_ids=[[] if forced[j] else top_i[r][j] for j in range(n)],
                    top_probs=[[] if forced[j] else [round(p, 5) for p in top_p[r][j]] for j in range(n)],
                    source=source,
                )
            )
        return out


def _finite(x: float) -> float | None:
    return round(x, 5) if math.isfinite(x) else None


def sampling_chain(
    temperature: float, top_p: float, draw: bool = False
) -> tuple[list[LogitsProcessor], dict[str, Any]]:
    """The warpers ``generate`` would add for sampling, and the kwargs that stop it adding them itself.

    Same warpers in the same order (temperature, then top-p) right after the custom processors, so a
    seeded run draws exactly the same tokens with or without capture. With ``draw`` (the CPU path, see
    :mod:`app.engine.sampling`) top-p is :class:`~app.engine.sampling.TopP` and the kwargs make ``generate``
    greedy: the caller puts a :class:`~app.engine.sampling.Draw` last, after any capture.
    """
    if temperature <= 0:
        return [], {}
    warpers: list[LogitsProcessor] = []
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_p < 1.0:
        warpers.append(TopP(top_p) if draw else TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    if draw:
        return warpers, {"do_sample": False, "temperature": None, "top_p": None}
    return warpers, {"temperature": 1.0, "top_p": 1.0}
