"""A Playground client in its own process, as a browser is: the benchmarks' UI side.

Running gradio_client inside the benchmark's process would put its SSE parsing and diff replay under the same
GIL as the model thread, and charge the app for work a browser does elsewhere. So the benchmarks start this
script, one process per session, and drive it over stdin/stdout, one JSON object per line:

    -> {"api_name": "/generate", "kwargs": {...}}      run one call, timed from just before it is submitted
    <- {"seconds": 7.1, "tokens": 176}                 (thinking + answer tokens of every sample of the run)
    <- {"error": "..."}                                if the call failed

``"api_name": "/new_chat"`` (no kwargs) resets the session's chat. EOF on stdin ends the process.

    python bench/ui_client.py http://127.0.0.1:7860/
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def serve(address: str) -> None:
    """The child side: one gradio_client session, one call per input line."""
    from gradio_client import Client

    client = Client(address, verbose=False)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        try:
            out = client.predict(**request.get("kwargs", {}), api_name=request["api_name"])
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
            continue
        seconds = time.perf_counter() - started
        run = out[2] if isinstance(out, (list, tuple)) and len(out) > 2 and isinstance(out[2], dict) else None
        tokens = sum(s["thinking_tokens"] + s["answer_tokens"] for s in run["samples"]) if run else 0
        print(json.dumps({"seconds": seconds, "tokens": tokens}), flush=True)


class UIClient:
    """The parent side: a :func:`serve` process for ``address``; :meth:`call` runs one API call there."""

    def __init__(self, address: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._read()  # {"ready": true}: the session exists before anything is timed

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the UI client process exited (code {self.proc.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def call(self, api_name: str, **kwargs: Any) -> dict[str, Any]:
        """Run one call in the client process; its ``seconds`` and ``tokens``."""
        self.send(api_name, **kwargs)
        return self.result()

    def send(self, api_name: str, **kwargs: Any) -> None:
        """Submit a call without waiting; :meth:`result` collects it (several clients can run at once)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"api_name": api_name, "kwargs": kwargs}) + "\n")

    def result(self) -> dict[str, Any]:
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> UIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1])
