"""llama.cpp decode speed on one GGUF, in a process of its own (run by ``cpu_bench.py``'s llama section).

Its own process because torch and llama.cpp each bring an OpenMP runtime: in one process on a small CPU
the two thread pools spin against each other, and llama.cpp measured 31 tok/s there against 105 alone.

    python bench/llama_worker.py '{"gguf": PATH, "text": PROMPT, "n": 160, "rounds": 3, "threads": 2}'

Prints one JSON line: ``{"tok_s": ...}``, or ``{"skipped": why}`` when llama-cpp-python can't be used.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main(spec: dict) -> dict:
    try:
        from llama_cpp import Llama
    except ImportError:
        return {"skipped": "llama-cpp-python is not installed (pip install '.[bench]')"}
    except OSError as exc:  # installed without its library (CMAKE_ARGS=-DLLAMA_BUILD=OFF)
        return {"skipped": f"llama-cpp-python can't load libllama ({exc}); set LLAMA_CPP_LIB_PATH to its folder"}
    llm = Llama(model_path=spec["gguf"], n_threads=spec["threads"], n_ctx=1024, verbose=False, seed=0)
    ban = {llm.token_eos(): -1e9}  # write exactly n tokens, like min_new_tokens does for generate

    def once(count: int) -> float:
        llm.reset()
        started = time.perf_counter()
        out = llm.create_completion(spec["text"], max_tokens=count, temperature=0.0, logit_bias=ban)
        return out["usage"]["completion_tokens"] / (time.perf_counter() - started)

    once(8)
    return {"tok_s": statistics.median(once(spec["n"]) for _ in range(spec["rounds"]))}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
