"""Remote-engine benchmark: ratios from one run (the machine is shared and noisy; compare within a run).

(a) Per-sequence tokens/s through the phase protocol (budget forcing as /v1/completions phases, min =
    max thinking so every phase boundary is exercised) ÷ the same server's raw /v1/completions for the
    same number of tokens. Goal ≥ 0.9.
(b) 4 concurrent Playground sessions via gradio_client: total tokens/s with the app on the remote engine
    (transformers serve --continuous-batching) ÷ the app on the local engine. Goal ≥ 2×. Printed with it:
    the server's own ceiling, raw completions one alone vs that many at once, without the app.

Starts its own `transformers serve` on the bundled model (pip install "transformers[serving]"); (b)'s local
side then runs in fp32, the server's precision. `--external URL` measures (a) and (b) on a server you started
(e.g. llama.cpp's llama-server, which keeps a prefix cache and batches its slots; the raw side of (a) then
bans end-of-sequence with logit_bias instead of transformers' min_new_tokens); (b)'s local side is then the
app's default precision (`--local-quantize` to change it: int4 is the bundled GGUF's own Q4_1 layout).
Usage: python bench/server_bench.py [--think 64] [--answer 32] [--sessions 4] [--repeats 3] [--threads 2]
       python bench/server_bench.py --external http://127.0.0.1:8080/v1 [--local-quantize auto]
       python bench/server_bench.py --ceiling-only --serve-args "--quantization bnb-4bit"   # try CB flags
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from serving import make_runtime, running_app, transformers_serve

from app.domain import GenerationSettings
from app.engine.bundled import ensure_bundled
from app.engine.prompt_side import load_prompt_side
from app.engine.reasoning_formats import build_prompt
from app.engine.remote import RemoteEngine
from app.engine.remote_client import CompletionClient
from app.engine.remote_phases import LOGPROBS
from app.ui.server import free_port

PROMPT = "What is 17*23?"


def raw_tokens_per_second(
    url: str, model: str, prompt: str, tokens: int, ban: list[int] | None = None, logprobs: int | None = None
) -> float:
    """One streamed raw completion of exactly ``tokens`` tokens: EOS suppressed through transformers'
    min_new_tokens, or, on another server, by banning the token ids ``ban`` with logit_bias. ``logprobs``
    asks for what the engine asks for, so only the phase round trips differ."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "stream": True, "temperature": 0.0}
    if logprobs:
        body["logprobs"] = logprobs
    if ban is None:
        body["generation_config"] = json.dumps({"do_sample": False, "min_new_tokens": tokens, "max_new_tokens": tokens})
    else:
        body |= {"logit_bias": {str(i): -100 for i in ban}, "stream_options": {"include_usage": True}}
    started, got, chunks = time.perf_counter(), None, 0
    with httpx.stream("POST", f"{url}/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            event = json.loads(line[5:])
            if event.get("usage"):
                got = event["usage"]["completion_tokens"]
            chunks += any(c.get("text") for c in event.get("choices") or [])  # a token a chunk, without usage
    got = got if got is not None else chunks
    assert got == tokens, f"raw request gave {got} tokens, wanted {tokens}"
    return tokens / (time.perf_counter() - started)


def bench_phases(
    engine: RemoteEngine, url: str, think: int, answer: int, repeats: int, ban: list[int] | None = None
) -> tuple[float, float, int]:
    settings = GenerationSettings(min_thinking_tokens=think, max_thinking_tokens=think, max_answer_tokens=answer)
    prompt = build_prompt(engine.format, engine.tokenizer, [{"role": "user", "content": PROMPT}], True)
    phased, raw, requests = [], [], 0
    for _ in range(repeats):  # interleaved, so drift in machine load hits both sides alike
        started = time.perf_counter()
        sample = engine.generate(PROMPT, settings).samples[0]
        seconds = time.perf_counter() - started
        tokens = sample.thinking_tokens + sample.answer_tokens
        phased.append(tokens / seconds)
        requests = sample.continuations + 2 + (1 if sample.stop_reason == "budget_cut" else 0)
        logprobs = LOGPROBS if engine.client.send_logprobs else None
        raw.append(raw_tokens_per_second(url, engine.client.model, prompt, tokens, ban, logprobs))
    return statistics.median(phased), statistics.median(raw), requests


def batching_ceiling(url: str, model: str, sessions: int, tokens: int = 128) -> tuple[float, float]:
    """The server's own batching, without the app: total tokens/s of one raw completion alone, then of
    ``sessions`` at once (greedy, a prompt that writes long). (b) can't beat ``sessions``-at-once ÷ local."""
    import concurrent.futures

    prompt = "Write a very long story about a cat who travels the world, with many details."

    def one(i: int) -> int:
        body = {"model": model, "prompt": f"{prompt} ({i})", "max_tokens": tokens, "temperature": 0.0}
        response = httpx.post(f"{url}/completions", json=body, timeout=600)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]

    one(0)  # warm up
    speeds = []
    for k in (1, sessions):
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(k) as pool:
            got = sum(pool.map(one, range(k)))
        speeds.append(got / (time.perf_counter() - started))
    return speeds[0], speeds[1]


def bench_sessions(rt, sessions: int, think: int, answer: int) -> tuple[float, int, float]:
    """Total tokens/s of ``sessions`` Playground generations submitted at once, each from its own gradio_client
    process (``bench/ui_client.py``), as browsers would: in-process clients would share the GIL with the
    local engine's model thread."""
    from ui_client import UIClient

    args = {"effort": "custom", "max_thinking_tokens": think, "min_thinking_tokens": think}
    args |= {"max_answer_tokens": answer, "temperature": 0.0}
    with running_app(rt) as url:
        clients = [UIClient(url) for _ in range(sessions)]
        try:
            clients[0].call(
                "/generate", prompt="warm up", **{**args, "max_thinking_tokens": 4, "min_thinking_tokens": 4}
            )
            started = time.perf_counter()
            for i, client in enumerate(clients):
                client.send("/generate", prompt=f"{PROMPT} ({i})", **args)
            tokens = sum(client.result()["tokens"] for client in clients)
            seconds = time.perf_counter() - started
        finally:
            for client in clients:
                client.close()
    return tokens / seconds, tokens, seconds


def remote_sessions(url: str, engine: RemoteEngine, work: Path, args: argparse.Namespace) -> dict[str, float]:
    """(b)'s remote side: the server's own ceiling, then ``args.sessions`` Playground sessions on it."""
    alone, together = batching_ceiling(url, engine.client.model, args.sessions)
    print(f"(b) the server alone, raw: 1 stream {alone:.1f} tok/s, {args.sessions} at once {together:.1f} tok/s")
    rt = make_runtime(engine.loaded, engine, work / "remote.db")
    rt.settings.server = url
    tps, tokens, seconds = bench_sessions(rt, args.sessions, args.think, args.answer)
    return {"together": together, "tps": tps, "tokens": tokens, "seconds": seconds}


def local_sessions_and_ratio(
    remote: dict[str, float], work: Path, args: argparse.Namespace, quantize: str, dtype: str
) -> None:
    """(b)'s local side (the engine loaded with ``quantize`` / ``dtype``), printed against ``remote``."""
    from app.engine.generation import Engine
    from app.engine.loading import load_model

    loaded = load_model("bundled", quantize=quantize, dtype=dtype)
    tps, tokens, seconds = bench_sessions(
        make_runtime(loaded, Engine(loaded), work / "local.db"), args.sessions, args.think, args.answer
    )
    print(
        f"(b) {args.sessions} concurrent Playground sessions: remote {remote['tps']:.1f} tok/s "
        f"({remote['tokens']:.0f} tokens in {remote['seconds']:.1f} s) vs local {loaded.precision} {tps:.1f} tok/s "
        f"({tokens} tokens in {seconds:.1f} s) -> {remote['tps'] / tps:.2f}x (goal >= 2x); the server's "
        f"raw {args.sessions} at once / local = {remote['together'] / tps:.2f}x, the most (b) could reach here"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--think", type=int, default=64)
    parser.add_argument("--answer", type=int, default=32)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads of the server process")
    parser.add_argument("--external", metavar="URL", help="measure (a) and (b) on this already running server")
    parser.add_argument("--local-quantize", help="(b)'s local engine: default none (fp32), or auto with --external")
    parser.add_argument("--serve-args", default="", help="extra flags for the continuous-batching server of (b)")
    parser.add_argument("--ceiling-only", action="store_true", help="only the CB server's 1-vs-N ceiling")
    args = parser.parse_args()
    serve_args = shlex.split(args.serve_args)
    work = Path(tempfile.mkdtemp(prefix="tracelab-server-bench-"))
    if args.external:
        engine = RemoteEngine(load_prompt_side("bundled", server=args.external), CompletionClient(args.external))
        engine.generate(PROMPT, GenerationSettings(max_thinking_tokens=8, max_answer_tokens=4))  # warm up
        tokenizer = engine.tokenizer
        ban = sorted({i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None})
        phased, raw, requests = bench_phases(engine, args.external, args.think, args.answer, args.repeats, ban)
        print(
            f"(a) {args.external}: phase protocol {phased:.1f} tok/s vs raw /v1/completions {raw:.1f} tok/s, "
            f"{requests} requests per trace (median of {args.repeats}) -> {phased / raw:.2f} (goal >= 0.9)"
        )
        remote = remote_sessions(args.external, engine, work, args)  # the server stays up, idle, for the local side
        quantize = args.local_quantize or "auto"
        local_sessions_and_ratio(remote, work, args, quantize, "float32" if quantize == "none" else "auto")
        return 0

    model_dir = ensure_bundled()
    log = work / "serve.log"
    # (a) on a plain server: continuous batching shares one generation config across requests (a TODO in
    # transformers), so the raw side's min_new_tokens (exact token count, EOS suppressed) only holds without it.
    if args.ceiling_only:
        with transformers_serve(
            model_dir, free_port(), log, continuous_batching=True, threads=args.threads, extra_args=serve_args
        ) as url:
            model = httpx.get(f"{url}/models", timeout=30).json()["data"][0]["id"]
            alone, together = batching_ceiling(url, model, args.sessions)
        print(
            f"(b) CB server {' '.join(serve_args) or '(default flags)'}, raw: 1 stream {alone:.1f} tok/s, "
            f"{args.sessions} at once {together:.1f} tok/s ({together / alone:.2f}x)"
        )
        return 0
    print(f"(a) transformers serve on {model_dir.name}, {args.threads} threads; log {work / 'plain.log'}")
    with transformers_serve(model_dir, free_port(), work / "plain.log", threads=args.threads) as url:
        engine = RemoteEngine(load_prompt_side("bundled", server=url), CompletionClient(url))
        engine.generate(PROMPT, GenerationSettings(max_thinking_tokens=8, max_answer_tokens=4))  # warm up
        phased, raw, requests = bench_phases(engine, url, args.think, args.answer, args.repeats)
        print(
            f"(a) phase protocol {phased:.1f} tok/s vs raw /v1/completions {raw:.1f} tok/s, same tokens, "
            f"{requests} requests per trace (median of {args.repeats}) -> {phased / raw:.2f} (goal >= 0.9)"
        )
    print(f"(b) transformers serve --continuous-batching {' '.join(serve_args)}, {args.threads} threads; log {log}")
    with transformers_serve(
        model_dir, free_port(), log, continuous_batching=True, threads=args.threads, extra_args=serve_args
    ) as url:
        engine = RemoteEngine(load_prompt_side("bundled", server=url), CompletionClient(url))
        engine.generate(PROMPT, GenerationSettings(max_thinking_tokens=8, max_answer_tokens=4))  # warm up
        remote = remote_sessions(url, engine, work, args)
    # stopped first, so its scheduler doesn't share the cores; fp32 is the server's precision: like for like
    quantize = args.local_quantize or "none"
    local_sessions_and_ratio(remote, work, args, quantize, "float32" if quantize == "none" else "auto")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
