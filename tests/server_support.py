"""A real ``transformers serve`` on 127.0.0.1 for the remote-engine tests, and the one stand-in.

One server per test session (see the ``inference_server`` fixture in conftest.py), started by
``bench/serving.py`` (shared with bench/server_bench.py; pytest puts bench/ on the path, see pyproject.toml).

The stand-in: :func:`scripted_server`, a few lines of socket server that answers over real HTTP what
transformers serve can't be made to (a 401, a stall, a cut stream, vLLM-shaped ``logprobs``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from serving import (  # noqa: F401 - the tests import these from here
    SERVER_PIDS,
    START_TIMEOUT,
    cpu_seconds,
    serve_command,
    served_requests,
    tail,
    transformers_serve,
)


@contextmanager
def scripted_server(reply: bytes | Callable[[bytes], bytes], *, hold: float = 0.0) -> Iterator[str]:
    """A loopback HTTP server that answers every request with ``reply`` (or ``reply(request bytes)``), then
    waits ``hold`` s and closes. Yields its ``/v1`` URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                request = _read_request(conn)
                conn.sendall(reply(request) if callable(reply) else reply)
                stop.wait(hold)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def _read_request(conn: socket.socket) -> bytes:
    """The whole request: headers, then the body up to its Content-Length."""
    conn.settimeout(5.0)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except OSError:
        return data


def http_reply(status: str, body: bytes, content_type: str = "application/json", length: bool = True) -> bytes:
    """A whole HTTP/1.1 response (``Connection: close``)."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n" if length else ""
    return (head + "Connection: close\r\n\r\n").encode() + body
