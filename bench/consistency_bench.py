"""Self-consistency speed-up: k samples in ONE batched generate vs k separate playground runs.

Both sides use the same service code the UI uses (``sample_consistency`` for the batch, ``run_prompt``
once per sample for the playground), the same prompt and settings, on the same loaded model, in one
process, after one warm-up generate. Prints wall times, tokens generated and the ratio (goal: >= 3x
on the bundled model with k=8). Wall time alone favours neither side unfairly: sampled traces differ
in length, so tokens/s is printed too, and process CPU time (steadier than wall time on a shared machine).

    .venv/bin/python bench/consistency_bench.py [--model bundled] [--k 8] [--budget 64] [--answer 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from app.domain import GenerationSettings
from app.services.consistency import sample_consistency
from app.services.runs import run_prompt
from app.services.runtime import Runtime
from app.settings import AppSettings

PROMPT = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
    "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg. "
    "How much in dollars does she make every day at the farmers' market?"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--budget", type=int, default=64, help="max thinking tokens per sample")
    parser.add_argument("--answer", type=int, default=32, help="max answer tokens per sample")
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        app_settings = AppSettings.from_env(model=args.model, db=f"sqlite:///{folder}/bench.db", data_dir=folder)
        rt = Runtime.start(app_settings)
        base = GenerationSettings(
            effort=None,
            max_thinking_tokens=args.budget,
            max_answer_tokens=args.answer,
            temperature=args.temperature,
            seed=0,
        )
        print(
            f"model {rt.loaded.name} on {rt.loaded.device} · k={args.k} · budget {args.budget} + answer {args.answer}"
        )
        run_prompt(rt, "Say hi.", base.with_(max_thinking_tokens=4, max_answer_tokens=4))  # warm-up

        started, cpu = time.perf_counter(), time.process_time()
        report = sample_consistency(rt, PROMPT, base, k=args.k)
        batched, batched_cpu = time.perf_counter() - started, time.process_time() - cpu
        batched_tokens = sum(s.thinking_tokens + s.answer_tokens for s in report.samples)

        started, cpu = time.perf_counter(), time.process_time()
        separate_tokens = 0
        for i in range(args.k):
            saved = run_prompt(rt, PROMPT, base.with_(seed=i, samples=1))
            separate_tokens += sum(s.thinking_tokens + s.answer_tokens for s in saved.result.samples)
        separate, separate_cpu = time.perf_counter() - started, time.process_time() - cpu

    print(
        f"batched  (1 generate of {args.k}): {batched:7.2f} s wall · {batched_cpu:7.2f} s CPU · "
        f"{batched_tokens:5d} tokens · {batched_tokens / batched:6.1f} tok/s"
    )
    print(
        f"separate ({args.k} playground runs): {separate:7.2f} s wall · {separate_cpu:7.2f} s CPU · "
        f"{separate_tokens:5d} tokens · {separate_tokens / separate:6.1f} tok/s"
    )
    print(f"vote: majority {report.vote.majority!r} at {report.vote.share:.0%}")
    ratio = separate / batched
    throughput = (batched_tokens / batched) / (separate_tokens / separate)
    print(
        f"speed-up (wall time, separate / batched): {ratio:.2f}x  (goal >= 3x) · tokens/s ratio {throughput:.2f}x "
        f"· CPU-time ratio {separate_cpu / batched_cpu:.2f}x (less sensitive to other load on the machine)"
    )


if __name__ == "__main__":
    main()
