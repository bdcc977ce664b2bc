"""Branch rollouts: S steps x N rollouts, batched with each prefix's KV cache reused, vs naive re-generation.

Three ways to produce the same S*N continuations of one trace, on the same loaded model in one process:

1. batched + prefix reuse: ONE generate of S*N rows (``Engine.stream_rollouts``); each prefix
   is encoded once and its KV cache repeated to its N rows;
2. batched, no reuse: the same single generate, every row encoding its own prefix (isolates the cache's part);
3. naive: S*N separate ``Engine.generate(prefix=...)`` calls, one after another, each re-encoding the prompt
   and prefix from scratch (what a loop over "resample from step k" would do).

All follow the same budget rules (the prefix's thinking counts against the budget). Sampled continuations
differ in length, so the ratio is of new tokens per second; wall and CPU seconds are printed too.
Goal: (1) / (3) >= 3x on the bundled model with 8 steps x 4 rollouts.
On a CPU, (1) is also run with transformers' own sampler (full-vocabulary sort and draw) instead of the
engine's (:mod:`app.engine.sampling`), which rollouts use since 2026-12-04: their ratio is that change's gain.

    .venv/bin/python bench/branch_bench.py [--model bundled] [--steps 8] [--rollouts 4] [--new 48]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import torch

from app.domain import GenerationSettings, TracePrefix
from app.engine import decode
from app.engine.decode import decoding_kwargs
from app.engine.events import RolloutBatch
from app.engine.generation import Engine
from app.engine.loading import load_model

PROMPT = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
    "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. "
    "How much in dollars does she make every day at the farmers' market?"
)
TRACE = [
    "Janet's ducks lay 16 eggs every day.",
    "She eats 3 eggs for breakfast each morning.",
    "She uses 4 eggs to bake muffins for her friends.",
    "So she uses 3 + 4 = 7 eggs herself every day.",
    "That leaves 16 - 7 = 9 eggs to sell.",
    "Each egg sells for $2 at the farmers' market.",
    "So she makes 9 * 2 = 18 dollars per day.",
    "Let me check: 16 - 3 - 4 = 9 and 9 * 2 = 18.",
    "Yes, the answer is 18 dollars.",
    "I am confident in this result.",
]


def new_tokens(engine: Engine, prefix: TracePrefix, sample) -> int:  # noqa: ANN001
    _, start = engine.prefix_start(prefix, True)
    return sample.thinking_tokens + sample.answer_tokens - start.thinking_tokens - start.answer_tokens


def timed(fn):  # noqa: ANN001, ANN201
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--new", type=int, default=48, help="thinking tokens each rollout may add to its prefix")
    parser.add_argument("--answer", type=int, default=16, help="max answer tokens")
    args = parser.parse_args(argv)
    if not 1 <= args.steps <= len(TRACE):
        parser.error(f"--steps must be between 1 and {len(TRACE)}")

    engine = Engine(load_model(args.model))
    prefixes = [TracePrefix(thinking="\n".join(TRACE[: k + 1]) + "\n") for k in range(args.steps)]
    longest = max(engine.prefix_start(p, True)[1].thinking_tokens for p in prefixes)
    settings = GenerationSettings(
        effort=None, max_thinking_tokens=longest + args.new, max_answer_tokens=args.answer, temperature=0.7, seed=0
    )
    n = args.rollouts
    print(f"model {engine.loaded.name} on {engine.loaded.device} · {args.steps} steps x {n} rollouts · "
          f"budget {settings.max_thinking_tokens} (longest prefix {longest}) + answer {args.answer}")  # fmt: skip
    engine.generate("Say hi.", settings.with_(max_thinking_tokens=4, max_answer_tokens=4))  # warm-up

    def batched(reuse: bool):  # noqa: ANN202
        items = list(engine.stream_rollouts(PROMPT, prefixes, settings, n, reuse_cache=reuse))
        batch = items[-1]
        assert isinstance(batch, RolloutBatch) and batch.error is None and batch.reused_cache == reuse
        return sum(new_tokens(engine, p, s) for p, group in zip(prefixes, batch.samples, strict=True) for s in group)

    def naive():  # noqa: ANN202
        total = 0
        for p in prefixes:
            for j in range(n):
                sample = engine.generate(PROMPT, settings.with_(seed=j), prefix=p).samples[0]
                total += new_tokens(engine, p, sample)
        return total

    def hf_sampler():  # noqa: ANN202 - (1) as before the engine's own CPU draw: a device that isn't "cpu"
        def old(budget, settings, device, capture=None):  # noqa: ANN001, ANN202
            return decoding_kwargs(budget, settings, torch.device("meta"), capture)

        with mock.patch.object(decode, "decoding_kwargs", old):
            return batched(True)

    rows = []
    variants = [("batched + prefix reuse", lambda: batched(True)), ("batched, no reuse", lambda: batched(False)),
                ("naive sequential", naive)]  # fmt: skip
    if engine.model.device.type == "cpu":
        variants.append(("(1), transformers sampler", hf_sampler))
    for name, fn in variants:
        tokens, wall, cpu = timed(fn)
        rows.append((name, tokens, wall, cpu))
        print(
            f"{name:24s} {tokens:6d} new tokens in {wall:7.1f} s wall ({cpu:7.1f} s CPU) = {tokens / wall:6.1f} tok/s"
        )
    (_, t1, w1, _), (_, t2, w2, _), (_, t3, w3, _) = rows[:3]
    print(f"throughput, batched + reuse / naive: {t1 / w1 / (t3 / w3):.2f}x (goal >= 3x)")
    print(f"throughput, batched + reuse / batched without reuse: {t1 / w1 / (t2 / w2):.2f}x")
    print(f"wall time for the same {args.steps * n} rollouts, naive / batched + reuse: {w3 / w1:.2f}x")
    if len(rows) > 3:
        _, t4, w4, _ = rows[3]
        print(f"throughput, batched + reuse with the engine's CPU sampler / transformers' sampler: "
              f"{t1 / w1 / (t4 / w4):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
