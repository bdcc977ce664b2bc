"""Engine benchmark on the bundled model; prints ratios measured in one run (the machine is noisy).

(a) tokens/s of the engine with a thinking budget active / tokens/s of plain ``model.generate``
    producing the same number of tokens (greedy, batch 1) -- goal >= 0.95;
(b) throughput of k=8 batched sampling / 8 sequential single samples -- goal >= 3.5x;
(c) peak RSS of this process;
(d) cold start (empty cache: GGUF conversion) vs warm start (cached safetensors), in subprocesses;
(e) the cost of per-token confidence capture (app.engine.confidence): tokens/s of the engine with capture
    on / off, sampled (temperature 0.7, top-p 0.95) at k=1 and k=8, rounds interleaved, and the capture's
    own wall time as a share of the same run (robust when the machine is busy). (a) already runs with
    capture on (the engine's default).

Run: ``.venv/bin/python bench/engine_bench.py`` (or ``make bench``). ``--quick`` shortens (a) and (b).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from app.domain import GenerationSettings
from app.engine.generation import Engine
from app.engine.loading import load_model
from app.engine.torch_thread import run_on_torch_thread

PROMPT = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"  # noqa: E501


def engine_vs_generate(engine: Engine, think: int, answer: int, rounds: int) -> dict:
    settings = GenerationSettings(max_thinking_tokens=think, min_thinking_tokens=think, max_answer_tokens=answer)
    tok = engine.tokenizer
    from app.engine.reasoning_formats import build_prompt

    prompt = build_prompt(engine.format, tok, [{"role": "user", "content": PROMPT}], True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).to(engine.model.device)
    ours, plain = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = engine.generate(PROMPT, settings)
        seconds = time.perf_counter() - t0
        s = result.samples[0]
        n = s.thinking_tokens + s.answer_tokens + 5  # + the forced delimiter tokens
        ours.append(n / seconds)
        t0 = time.perf_counter()
        run_on_torch_thread(plain_generate, engine, ids, n)
        plain.append(n / (time.perf_counter() - t0))
    return {
        "engine_tok_s": statistics.median(ours),
        "generate_tok_s": statistics.median(plain),
        "ratio": statistics.median(ours) / statistics.median(plain),
        "tokens": n,
    }


def plain_generate(engine: Engine, ids, n: int) -> None:
    """Plain ``model.generate`` on the same model thread the engine uses (see app.engine.torch_thread)."""
    tok = engine.tokenizer
    with torch.inference_mode():
        engine.model.generate(
            **ids,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            top_k=None,
            temperature=None,
            top_p=None,
            pad_token_id=tok.pad_token_id,
        )


def batched_vs_sequential(engine: Engine, k: int, think: int) -> dict:
    base = GenerationSettings(max_thinking_tokens=think, max_answer_tokens=32, temperature=0.7, seed=0)
    t0 = time.perf_counter()
    batch = engine.generate(PROMPT, base.with_(samples=k))
    batched_s = time.perf_counter() - t0
    batched_tokens = sum(s.thinking_tokens + s.answer_tokens for s in batch.samples)
    t0 = time.perf_counter()
    seq_tokens = 0
    for i in range(k):
        r = engine.generate(PROMPT, base.with_(seed=i))
        seq_tokens += sum(s.thinking_tokens + s.answer_tokens for s in r.samples)
    seq_s = time.perf_counter() - t0
    return {
        "batched_tok_s": batched_tokens / batched_s,
        "sequential_tok_s": seq_tokens / seq_s,
        "throughput_ratio": (batched_tokens / batched_s) / (seq_tokens / seq_s),
        "batched_wall_s": batched_s,
        "sequential_wall_s": seq_s,
    }


def capture_cost(engine: Engine, k: int, think: int, rounds: int) -> dict:
    """Engine tokens/s with token capture on vs off on the same seeded sampled run (identical tokens)."""
    off = Engine(engine.loaded, capture_tokens=False)
    settings = GenerationSettings(
        max_thinking_tokens=think, min_thinking_tokens=think, max_answer_tokens=16, temperature=0.7, seed=0
    ).with_(samples=k)
    rates: dict[str, list[float]] = {"on": [], "off": []}
    shares = []
    for _ in range(rounds):
        for name, eng in (("on", engine), ("off", off)):
            t0 = time.perf_counter()
            result = eng.generate(PROMPT, settings)
            seconds = time.perf_counter() - t0
            rates[name].append(sum(s.thinking_tokens + s.answer_tokens for s in result.samples) / seconds)
            if name == "on":  # the capture's own time inside this very run: robust to a noisy machine
                shares.append(engine.last_capture_seconds / seconds)
    on, off_rate = statistics.median(rates["on"]), statistics.median(rates["off"])
    share = statistics.median(shares)
    return {"k": k, "on_tok_s": on, "off_tok_s": off_rate, "ratio": on / off_rate, "capture_share": share}


def start_times() -> dict:
    code = (
        "import time,sys; from pathlib import Path; from app.engine.loading import load_model; "
        "t=time.perf_counter(); load_model('bundled', cache_dir=Path(sys.argv[1])); "
        "print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        cold = float(
            subprocess.run(
                [sys.executable, "-c", code, cache], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
        warm = float(
            subprocess.run(
                [sys.executable, "-c", code, cache], capture_output=True, text=True, check=True
            ).stdout.split()[-1]
        )
    return {"cold_start_s": cold, "warm_start_s": warm, "cold_over_warm": cold / warm}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="bundled")
    args = parser.parse_args()
    engine = Engine(load_model(args.model))
    device = engine.loaded.device
    print(
        f"model: {engine.loaded.name} on {device} ({engine.loaded.quantization}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}",
        flush=True,
    )
    engine.generate("warm up", GenerationSettings(max_thinking_tokens=8, max_answer_tokens=4))
    a = engine_vs_generate(
        engine, think=48 if args.quick else 160, answer=16 if args.quick else 40, rounds=2 if args.quick else 3
    )
    print(
        f"(a) engine with budget and token capture {a['engine_tok_s']:.1f} tok/s vs plain generate {a['generate_tok_s']:.1f} tok/s "
        f"-> ratio {a['ratio']:.3f} (goal >= 0.95; {a['tokens']} tokens, median of rounds)",
        flush=True,
    )
    b = batched_vs_sequential(engine, k=8, think=32 if args.quick else 96)
    print(
        f"(b) k=8 batched {b['batched_tok_s']:.1f} tok/s ({b['batched_wall_s']:.1f} s) vs 8 sequential "
        f"{b['sequential_tok_s']:.1f} tok/s ({b['sequential_wall_s']:.1f} s) -> {b['throughput_ratio']:.2f}x "
        "(goal >= 3.5x)",
        flush=True,
    )
    e = [capture_cost(engine, k, think=32 if args.quick else 96, rounds=2 if args.quick else 3) for k in (1, 8)]
    for row in e:
        print(
            f"(e) token capture at k={row['k']}: on {row['on_tok_s']:.1f} tok/s vs off {row['off_tok_s']:.1f} tok/s "
            f"-> ratio {row['ratio']:.3f}; capture's own time {row['capture_share']:.1%} of the run "
            f"(ratio implied {1 - row['capture_share']:.3f}; goal >= 0.95)",
            flush=True,
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(c) peak RSS {rss:.0f} MiB", flush=True)
    if device == "cpu" or args.model == "bundled":
        d = start_times()
        print(
            f"(d) cold start {d['cold_start_s']:.1f} s (GGUF conversion) vs warm {d['warm_start_s']:.1f} s "
            f"-> {d['cold_over_warm']:.1f}x",
            flush=True,
        )
    else:
        d = {}
    print(json.dumps({"a": a, "b": b, "peak_rss_mib": rss, "d": d, "e": e}))


if __name__ == "__main__":
    main()
