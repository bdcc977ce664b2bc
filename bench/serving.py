"""The servers a benchmark measures, started and stopped here: a real ``transformers serve`` on 127.0.0.1, and
the app itself for a Runtime on a free loopback port (``bench/server_bench.py``; the tests use them too, through
``tests/server_support.py`` and ``tests/ui_support.py``).

``transformers serve`` runs the bundled model's converted folder from ~/.cache/tracelab. Start-up is bounded: a
server that does not answer ``/v1/models`` in time raises with its log tail, never hangs the caller.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

#: Seconds a server may take to start and answer a first completion (a loaded CI box is slow).
START_TIMEOUT = 240.0


def serve_command() -> list[str] | None:
    """How to run ``transformers serve`` from this interpreter's environment, or None if it isn't installed."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return None
    exe = Path(sys.executable).with_name("transformers")
    return [str(exe)] if exe.exists() else ([shutil.which("transformers")] if shutil.which("transformers") else None)


@contextmanager
def transformers_serve(
    model_dir: Path,
    port: int,
    log_path: Path,
    *,
    continuous_batching: bool = False,
    threads: int = 1,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``transformers serve MODEL_DIR`` on 127.0.0.1:PORT until the block ends; yield its ``/v1`` URL.
    ``extra_args`` go to the command line as they are (e.g. ``--quantization bnb-4bit``).

    ``threads`` caps the server's OpenMP pool: on a small shared CPU box two processes spinning full
    pools (the app's and the server's) slow each other several-fold.
    """
    command = serve_command()
    if command is None:
        raise RuntimeError('transformers serve is not installed: pip install "transformers[serving]"')
    args = [*command, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    if continuous_batching:
        args.append("--continuous-batching")
    args += list(extra_args)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_serving(proc, url, str(model_dir), log_path)
        SERVER_PIDS[url] = proc.pid
        yield url
    finally:
        SERVER_PIDS.pop(url, None)
        _stop(proc)


#: The process id of each running server started here, by its ``/v1`` URL.
SERVER_PIDS: dict[str, int] = {}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process and its live descendants have used so far, from /proc (Linux).

    Descendants count because transformers serve (5.2x) runs the model in a child process of the server.
    """
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except (FileNotFoundError, ProcessLookupError):  # it exited between the listing and the read
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in tasks:
            try:
                todo.extend(int(child) for child in (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):
                continue
    return total


def _wait_until_serving(proc: subprocess.Popen, url: str, model: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {proc.returncode}:\n{tail(log_path)}")
        try:
            httpx.get(f"{url}/models", timeout=2).raise_for_status()
            # The first completion loads the model; pay for it here, not in the first test.
            body = {"model": model, "prompt": "Hello", "max_tokens": 2, "temperature": 0}
            httpx.post(
                f"{url}/completions", json=body, timeout=max(5.0, deadline - time.monotonic())
            ).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(1.0)
    raise RuntimeError(f"transformers serve did not answer on {url} within {START_TIMEOUT:.0f} s:\n{tail(log_path)}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def served_requests(log_path: Path) -> int:
    """How many ``POST /v1/completions`` the server's log shows (the issue's "the server's log shows the requests")."""
    return tail(log_path, 100_000).count("POST /v1/completions")


def make_runtime(loaded: Any, engine: Any, db_path: Path) -> Any:
    """A Runtime over an already loaded model and a fresh SQLite file."""
    from app.services.runtime import Runtime
    from app.settings import AppSettings
    from app.store.db import open_store

    url = f"sqlite:///{db_path}"
    settings = AppSettings.from_env(model=loaded.spec, db=url, data_dir=str(db_path.parent))
    return Runtime(settings=settings, loaded=loaded, engine=engine, store=open_store(url))


@contextmanager
def running_app(rt: Any) -> Iterator[str]:
    """Launch the real Blocks app for ``rt``; yield its URL; close it afterwards."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app.ui.server import launch_for_tests

    demo, url = launch_for_tests(rt)
    try:
        yield url
    finally:
        demo.close()
