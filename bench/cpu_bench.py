"""CPU benchmark: which way of running the bundled model is fastest here, and what the layers above cost.

One run, one process, ratios only (absolute speeds differ between machines and between minutes on a
shared one). Greedy decoding at batch 1 unless said otherwise; every timed generate is preceded by a
warm-up. Sections:

1. variants -- plain ``model.generate`` tok/s for fp32 (SDPA attention, the default), fp32 with eager
   attention, bf16, bf16 with a static KV cache + ``torch.compile``, int4 (torch's CPU int4 kernel,
   ``--quantize int4``) with and without static cache + compile, NF4 (bitsandbytes 4-bit, bf16 compute),
   int8 (bitsandbytes 8-bit, few tokens: it is slow), and bf16 at 1 thread vs all; each as a ratio to
   fp32, with how many greedy tokens match fp32's (dtype noise shows up here); plus the prefill of a long
   prompt for fp32, int4 and NF4;
2. engine vs plain generate on the app's default CPU load (``--quantize auto --dtype auto``);
3. int4 and NF4 vs fp32 through the engine;
4. the Playground's ``/generate`` through gradio_client (in its own process, as a browser) vs the CLI's
   service path, same settings;
5. k=8 batched sampling vs 8 sequential samples;
6. llama.cpp (``llama-cpp-python``, the optional ``bench`` extra) on the same GGUF the bundled model comes
   from, in its own process (``llama_worker.py``), only when it imports; the goal is engine decode >= 0.5x
   llama.cpp.

    .venv/bin/python bench/cpu_bench.py [--tokens 160] [--rounds 3] [--quick] [--skip compile,ui,...]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from engine_bench import PROMPT, batched_vs_sequential, engine_vs_generate

from app.domain import GenerationSettings
from app.engine.generation import Engine
from app.engine.loading import LoadedModel, load_model
from app.engine.reasoning_formats import build_prompt
from app.engine.torch_thread import run_on_torch_thread

SECTIONS = ("omp", "variants", "threads", "compile", "int8", "prefill", "engine", "quant", "ui", "batched", "llama")
#: OpenMP settings compared in fresh processes (libgomp reads them once, at start).
OMP_SETTINGS = {
    "default": {},
    "wait-passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1-thread": {"OMP_NUM_THREADS": "1"},
}


def prompt_ids(loaded: LoadedModel) -> Any:
    text = build_prompt(loaded.format, loaded.tokenizer, [{"role": "user", "content": PROMPT}], True)
    return loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False)


def plain_decode(loaded: LoadedModel, n: int, rounds: int, **generate_kwargs: Any) -> tuple[float, list[int]]:
    """Median tok/s of plain greedy ``generate`` of exactly ``n`` new tokens, and the tokens it wrote."""
    ids = prompt_ids(loaded)

    def once(count: int) -> tuple[float, list[int]]:
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = loaded.model.generate(
                **ids,
                max_new_tokens=count,
                min_new_tokens=count,
                do_sample=False,
                top_k=None,
                temperature=None,
                top_p=None,
                pad_token_id=loaded.tokenizer.pad_token_id,
                **generate_kwargs,
            )
            seconds = time.perf_counter() - t0
        return count / seconds, out[0, ids["input_ids"].shape[1] :].tolist()

    run_on_torch_thread(once, min(n, 8))  # warm-up (and the compile, where there is one)
    speeds, tokens = [], []
    for _ in range(rounds):
        speed, tokens = run_on_torch_thread(once, n)
        speeds.append(speed)
    return statistics.median(speeds), tokens


def prefill_seconds(loaded: LoadedModel, tokens: int = 512, rounds: int = 3) -> float:
    """Median seconds of one forward pass over a ``tokens``-long prompt (what a long prompt or a branch's
    prefix costs before the first new token)."""
    ids = torch.randint(100, 10000, (1, tokens))

    def once() -> float:
        with torch.inference_mode():
            t0 = time.perf_counter()
            loaded.model(input_ids=ids, use_cache=True)
            return time.perf_counter() - t0

    run_on_torch_thread(once)
    return statistics.median(run_on_torch_thread(once) for _ in range(rounds))


def same_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def free(loaded: LoadedModel | None) -> None:
    del loaded
    run_on_torch_thread(gc.collect)


def load(quantize: str = "none", dtype: str = "float32") -> LoadedModel:
    return load_model("bundled", quantize=quantize, dtype=dtype, device="cpu")


def variants(args: argparse.Namespace, skip: set[str]) -> dict[str, Any]:
    """Section 1: each way of running the weights, as plain generate tok/s and a ratio to fp32."""
    n, rounds = args.tokens, args.rounds
    out: dict[str, Any] = {}
    reference: list[int] = []

    def record(name: str, speed: float, tokens: list[int], note: str = "") -> None:
        base = out.get("fp32", {}).get("tok_s", speed)
        match = same_prefix(tokens, reference) if reference else len(tokens)
        out[name] = {"tok_s": speed, "vs_fp32": speed / base, "greedy_tokens_matching_fp32": match, "of": len(tokens)}
        print(
            f"  {name:22s} {speed:6.1f} tok/s  {speed / base:5.2f}x fp32  first {match}/{len(tokens)} greedy "
            f"tokens as fp32 {note}",
            flush=True,
        )

    def record_compiled(name: str, loaded: LoadedModel, why: str = "") -> None:
        """A static KV cache + ``torch.compile`` through generate's compile_config; a failure is reported."""
        from transformers import CompileConfig

        t0 = time.perf_counter()
        try:
            config = CompileConfig(fullgraph=False)
            config._compile_all_devices = True  # transformers only auto-compiles on accelerators otherwise
            compiled = plain_decode(loaded, n, rounds, cache_implementation="static", compile_config=config)
            record(name, *compiled, f"({why}first call incl. compile {time.perf_counter() - t0:.0f} s)")
        except Exception as exc:  # noqa: BLE001 - the inductor needs a C++ compiler; report, don't abort the run
            out[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            print(f"  {name:22s} failed: {out[name]['error']}", flush=True)

    prefill: dict[str, float] = {}

    def record_prefill(name: str, loaded: LoadedModel) -> None:
        if "prefill" not in skip:
            prefill[name] = prefill_seconds(loaded, rounds=rounds)

    loaded = load(dtype="float32")
    speed, reference = plain_decode(loaded, n, rounds)
    record("fp32", speed, reference, "(SDPA attention, the transformers default)")
    record_prefill("fp32", loaded)
    run_on_torch_thread(loaded.model.set_attn_implementation, "eager")
    record("fp32-eager-attention", *plain_decode(loaded, n, rounds))
    free(loaded)

    loaded = load(dtype="bfloat16")
    record("bf16", *plain_decode(loaded, n, rounds))
    if "threads" not in skip:
        threads = torch.get_num_threads()
        run_on_torch_thread(torch.set_num_threads, 1)
        try:
            record("bf16-1-thread", *plain_decode(loaded, n, rounds), f"(vs {threads} threads)")
        finally:
            run_on_torch_thread(torch.set_num_threads, threads)
    if "compile" not in skip:
        record_compiled("bf16-static-compile", loaded)
    free(loaded)

    loaded = load(quantize="int4", dtype="auto")
    record("int4", *plain_decode(loaded, n, rounds), "(torch's CPU int4 kernel, group 32; head int8)")
    record_prefill("int4", loaded)
    if "compile" not in skip:
        record_compiled("int4-static-compile", loaded)
    free(loaded)

    loaded = load(quantize="4bit", dtype="bfloat16")
    record("nf4", *plain_decode(loaded, n, rounds), "(bitsandbytes 4-bit, bf16 compute)")
    record_prefill("nf4", loaded)
    if "compile" not in skip:  # transformers declines to compile a bitsandbytes model: this is its static cache
        record_compiled("nf4-static-compile", loaded, "transformers skips compiling bitsandbytes models; ")
    free(loaded)
    if "int8" not in skip:
        loaded = load(quantize="8bit", dtype="float32")
        few = min(n, 16)
        speed, tokens = plain_decode(loaded, few, 1)
        record("int8", speed, tokens, f"(bitsandbytes 8-bit; {few} tokens only)")
        free(loaded)
    if prefill:
        out["prefill_512_seconds"] = prefill
        print("  prefill of a 512-token prompt: " + ", ".join(f"{k} {v:.2f} s" for k, v in prefill.items()), flush=True)
    return out


def omp_settings(n: int, rounds: int) -> dict[str, Any]:
    """Section 0: fp32 plain decode under each OpenMP setting, each in a fresh process (on a busy CPU the
    default spin-waiting of libgomp's threads collapses when the cores are oversubscribed)."""
    import os
    import subprocess

    code = (
        "import cpu_bench as b; "  # run in bench/, so `python -c` finds this file
        f"print(b.plain_decode(b.load(), {n}, {rounds})[0])"
    )
    here = Path(__file__).resolve().parent
    out: dict[str, Any] = {}
    for name, env in OMP_SETTINGS.items():
        clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
        try:
            done = subprocess.run(
                [sys.executable, "-c", code],
                env={**clean, **env},
                cwd=here,
                capture_output=True,
                text=True,
                timeout=300,
            )
            out[name] = float(done.stdout.split()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            out[name] = None
            print(f"  {name}: no figure ({type(exc).__name__}; the limit is 300 s for {n} tokens)", flush=True)
            continue
        versus = f"{out[name] / out['default']:5.2f}x default" if out.get("default") else "(default: no figure)"
        print(f"  {name:22s} {out[name]:6.1f} tok/s  {versus}", flush=True)
    return out


def ui_vs_cli(engine: Engine, n: int, rounds: int) -> dict[str, Any]:
    """Section 4: the Playground's /generate through gradio_client vs the CLI's service path, same settings.

    The client runs in its own process (``bench/ui_client.py``), as a browser does: in this process its SSE
    parsing would share the GIL with the model thread and be charged to the app.
    """
    from ui_client import UIClient

    from app.services.runs import stream_run
    from app.services.runtime import Runtime
    from app.settings import AppSettings
    from app.store.db import open_store
    from app.ui.server import launch_for_tests

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        settings = AppSettings.from_env(model="bundled", db=url, data_dir=tmp)
        rt = Runtime(settings=settings, loaded=engine.loaded, engine=engine, store=open_store(url))
        gen = GenerationSettings(max_thinking_tokens=n, min_thinking_tokens=n, max_answer_tokens=16)
        demo, address = launch_for_tests(rt)
        try:
            with UIClient(address) as client:

                def ui() -> float:
                    client.call("/new_chat")
                    reply = client.call(
                        "/generate",
                        prompt=PROMPT,
                        effort="custom",
                        max_thinking_tokens=n,
                        min_thinking_tokens=n,
                        max_answer_tokens=16,
                        temperature=0,
                    )
                    return reply["tokens"] / reply["seconds"]

                def cli() -> float:
                    t0 = time.perf_counter()
                    result = None
                    for event in stream_run(rt, PROMPT, gen):
                        result = getattr(event, "result", result)
                    s = result.samples[0]
                    return (s.thinking_tokens + s.answer_tokens) / (time.perf_counter() - t0)

                ui()  # warm-up: the first request pays for the session and the queue
                ui_speeds, cli_speeds = [], []
                for _ in range(rounds):  # interleaved, so drift in the machine's load hits both sides
                    cli_speeds.append(cli())
                    ui_speeds.append(ui())
        finally:
            demo.close()
    u, c = statistics.median(ui_speeds), statistics.median(cli_speeds)
    return {"ui_tok_s": u, "cli_tok_s": c, "ratio": u / c}


def llama_cpp(n: int, rounds: int, threads: int) -> dict[str, Any]:
    """Section 6: llama.cpp on the GGUF the bundled model is converted from (same weights, its Q4_1 kernels),
    in its own process (``bench/llama_worker.py``): in this one, torch's OpenMP pool would slow it."""
    import subprocess

    from app.engine.bundled import find_gguf

    gguf = find_gguf()
    loaded_tok = load_model("bundled", device="cpu", quantize="none")  # only for the same prompt text
    text = build_prompt(loaded_tok.format, loaded_tok.tokenizer, [{"role": "user", "content": PROMPT}], True)
    free(loaded_tok)
    spec = {"gguf": str(gguf), "text": text, "n": n, "rounds": rounds, "threads": threads}
    worker = Path(__file__).resolve().parent / "llama_worker.py"
    done = subprocess.run([sys.executable, str(worker), json.dumps(spec)], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"skipped": f"llama.cpp worker failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"}
    return {**json.loads(lines[-1]), "gguf": gguf.name, "threads": threads}


def section(name: str, skip: set[str], fn: Callable[[], Any], results: dict[str, Any]) -> Any:
    if name in skip:
        return None
    print(f"[{name}]", flush=True)
    try:
        results[name] = fn()
    except Exception as exc:  # one failing section must not hide the others' figures
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"  failed: {results[name]['error']}", flush=True)
    return results[name]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=160, help="new tokens per timed generate")
    parser.add_argument("--rounds", type=int, default=3, help="timed repeats per figure (the median is kept)")
    parser.add_argument("--quick", action="store_true", help="32 tokens, 1 round: checks the script, not the speed")
    parser.add_argument("--threads", type=int, help="torch threads for the whole run (default: torch's choice)")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    if args.quick:
        args.tokens, args.rounds = 32, 1
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.threads:
        run_on_torch_thread(torch.set_num_threads, args.threads)
    threads = run_on_torch_thread(torch.get_num_threads)
    print(f"torch {torch.__version__}, {threads} threads, {args.tokens} tokens, median of {args.rounds}", flush=True)
    results: dict[str, Any] = {"tokens": args.tokens, "threads": threads}

    section("omp", skip, lambda: omp_settings(min(args.tokens, 32), 1), results)
    section("variants", skip, lambda: variants(args, skip), results)

    default = load_model("bundled", device="cpu")  # what `python -m app` runs on CPU: --quantize/--dtype auto
    engine = Engine(default)
    print(f"default CPU load: precision {default.precision}", flush=True)
    results["default_precision"] = default.precision

    def engine_section() -> dict[str, Any]:
        a = engine_vs_generate(engine, think=args.tokens, answer=16, rounds=args.rounds)
        print(f"  engine {a['engine_tok_s']:.1f} vs plain generate {a['generate_tok_s']:.1f} tok/s -> {a['ratio']:.3f}")
        return a

    section("engine", skip, engine_section, results)

    def quant_section() -> dict[str, Any]:
        out = {}
        for name, quantize, dtype in (
            ("int4", "int4", "auto"),
            ("nf4", "4bit", "bfloat16"),
            ("fp32", "none", "float32"),
        ):
            loaded = load(quantize=quantize, dtype=dtype)
            a = engine_vs_generate(Engine(loaded), think=args.tokens, answer=16, rounds=args.rounds)
            out[name] = a["engine_tok_s"]
            free(loaded)
        out["int4_vs_fp32"], out["nf4_vs_fp32"] = out["int4"] / out["fp32"], out["nf4"] / out["fp32"]
        print(
            f"  engine int4 {out['int4']:.1f}, NF4 {out['nf4']:.1f}, fp32 {out['fp32']:.1f} tok/s -> int4 "
            f"{out['int4_vs_fp32']:.2f}x, NF4 {out['nf4_vs_fp32']:.2f}x fp32"
        )
        return out

    section("quant", skip, quant_section, results)

    def ui_section() -> dict[str, Any]:
        u = ui_vs_cli(engine, args.tokens, args.rounds)
        print(f"  Playground via gradio_client {u['ui_tok_s']:.1f} vs CLI {u['cli_tok_s']:.1f} -> {u['ratio']:.2f}")
        return u

    section("ui", skip, ui_section, results)

    def batched_section() -> dict[str, Any]:
        b = batched_vs_sequential(engine, k=8, think=max(32, args.tokens // 2))
        print(
            f"  k=8 batched {b['batched_tok_s']:.1f} vs sequential {b['sequential_tok_s']:.1f} tok/s "
            f"-> {b['throughput_ratio']:.2f}x"
        )
        return b

    section("batched", skip, batched_section, results)

    def llama_section() -> dict[str, Any]:
        out = llama_cpp(args.tokens, args.rounds, threads)
        if "tok_s" in out and "engine" in results and "engine_tok_s" in results["engine"]:
            out["engine_over_llama"] = results["engine"]["engine_tok_s"] / out["tok_s"]
            print(
                f"  llama.cpp {out['tok_s']:.1f} tok/s ({out['gguf']}, {threads} threads); engine "
                f"({default.precision}) / llama.cpp = {out['engine_over_llama']:.2f} (goal >= 0.5)"
            )
        else:
            print(f"  {out}")
        return out

    section("llama", skip, llama_section, results)
    print(json.dumps(results, default=float))
    return results


if __name__ == "__main__":
    main()
