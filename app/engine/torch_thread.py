"""One thread for all of the model's work: loading and every generate call.

Why: torch's CPU kernels use OpenMP, and libgomp keeps one worker pool per thread that starts
parallel work. As soon as a second thread has a pool, libgomp sees more threads than cores and stops
spin-waiting, and every matmul of a decode step pays a wake-up: on a 2-core machine the bundled model
fell from ~31 to ~18 tokens/s when generate ran in a fresh thread instead of the first one (measured
with bench/engine_bench.py). Gradio calls handlers from a thread pool, so without this each request
would create one more pool. Running everything on this single long-lived thread keeps one pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracelab-torch")
_THREAD_IDS: set[int] = set()


def _mark() -> None:
    _THREAD_IDS.add(threading.get_ident())


_EXECUTOR.submit(_mark).result()


def on_torch_thread() -> bool:
    return threading.get_ident() in _THREAD_IDS


def run_on_torch_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run ``fn`` on the model thread and return its result (re-raising its exception); re-entrant."""
    if on_torch_thread():
        return fn(*args, **kwargs)
    return _EXECUTOR.submit(fn, *args, **kwargs).result()


def submit_to_torch_thread(fn: Callable[[], T]) -> Future:
    """Start ``fn`` on the model thread without waiting (the engine streams while it runs)."""
    if on_torch_thread():
        raise RuntimeError("submit_to_torch_thread called from the model thread itself would deadlock")
    return _EXECUTOR.submit(fn)


def model_thread_idle(timeout: float = 1.0) -> bool:
    """True when the model thread picks up new work within ``timeout`` s (no generation is holding it)."""
    try:
        _EXECUTOR.submit(lambda: None).result(timeout=timeout)
        return True
    except TimeoutError:
        return False
