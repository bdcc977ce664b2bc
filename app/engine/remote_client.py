"""The HTTP side of the remote engine: one OpenAI-compatible server, its ``/v1/models`` and streamed ``/v1/completions``.

Owns the connection (an ``httpx.Client`` with bounded timeouts), Server-Sent-Events parsing and turning
every way a server can fail -- unreachable, 401, unknown model, no ``/v1/completions``, a timeout, a
stream cut mid-way -- into a :class:`RemoteError` whose message names the URL and the fix. The API key
is sent as a bearer token and appears in no message, log line or repr. Knows nothing about budgets,
prompts or storage (app.engine.remote drives the phases).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from app.engine.remote_tokens import TokenLogprob, parse_logprobs
from app.errors import UserError

log = logging.getLogger(__name__)

#: Seconds to open a connection; a server that is down fails this fast.
CONNECT_TIMEOUT = 5.0
#: Seconds a server may stay silent mid-request (a CPU server's first request also loads the model).
READ_TIMEOUT = 300.0
#: Connections kept open to the server: one per concurrently generating sample.
MAX_CONNECTIONS = 64


class RemoteError(UserError, RuntimeError):
    """A server request failed; the message names the server URL, the problem and the fix."""


@dataclass(frozen=True)
class Chunk:
    """One streamed piece of a completion: new ``text``; the last one carries ``finish_reason`` and usage."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int | None = None
    stop_reason: Any = None  # vLLM/SGLang: the matched stop string, or the stop token id
    logprobs: list[TokenLogprob] | None = None  # None: the server sent no ``logprobs`` with this chunk


class CompletionClient:
    """Talks to one server at ``base_url`` (e.g. ``http://gpu-box:8000/v1``). Thread-safe: one pooled client."""

    def __init__(
        self, base_url: str, *, api_key: str = "", model: str = "", read_timeout: float = READ_TIMEOUT
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.model = model
        self.read_timeout = read_timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        )
        self._lock = threading.Lock()
        #: False once the server refused the ``logprobs`` field (then it is no longer sent).
        self.send_logprobs = True

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"CompletionClient({self.base_url!r}, model={self.model!r})"

    def close(self) -> None:
        self._http.close()

    # -- models -----------------------------------------------------------------------------------

    def models(self) -> list[str]:
        """The model ids ``/v1/models`` lists (a :class:`RemoteError` when the server can't be asked)."""
        try:
            response = self._http.get("/models", timeout=httpx.Timeout(10.0, connect=CONNECT_TIMEOUT))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        self._raise_for_status(response)
        try:
            return [str(m["id"]) for m in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RemoteError(
                f"{self.base_url}/models did not answer with an OpenAI model list. Check that --server is the "
                "base URL of an OpenAI-compatible server, ending in /v1 (e.g. http://gpu-box:8000/v1)."
            ) from None

    def resolve_model(self) -> str:
        """The model to request: ``--server-model`` if given, else the first one the server lists."""
        with self._lock:
            if not self.model:
                listed = self.models()
                if not listed:
                    raise RemoteError(
                        f"The server at {self.base_url} lists no models; pass the one it serves with --server-model."
                    )
                self.model = listed[0]
            return self.model

    # -- completions ------------------------------------------------------------------------------

    def stream(self, body: dict[str, Any], stop_when: Any = None) -> Iterator[Chunk]:
        """POST a streamed ``/completions`` request and yield its chunks.

        ``stop_when()`` is checked between chunks; when it returns true the stream is closed, which
        makes vLLM, SGLang, llama.cpp and transformers serve abort the request. A server that refuses the
        ``logprobs`` field (HTTP 400/422 naming it) is asked again without it, and never sent it again.
        """
        if not self.send_logprobs:
            body = {k: v for k, v in body.items() if k != "logprobs"}
        try:
            yield from self._stream(body, stop_when)
        except _LogprobsRefused:
            self.send_logprobs = False
            log.warning("The server at %s refuses logprobs; runs on it carry no token data.", self.base_url)
            yield from self._stream({k: v for k, v in body.items() if k != "logprobs"}, stop_when)

    def _stream(self, body: dict[str, Any], stop_when: Any) -> Iterator[Chunk]:
        payload = {"model": self.resolve_model(), "stream": True, **body}
        received = 0
        try:
            with self._http.stream("POST", "/completions", json=payload) as response:
                if response.status_code >= 400:
                    response.read()
                    refused = response.status_code in (400, 422) and "logprob" in _detail(response).lower()
                    if refused and "logprobs" in body:
                        raise _LogprobsRefused
                    token_prompt = isinstance(body.get("prompt"), list)
                    if token_prompt and response.status_code in (400, 422, 500) and "prompt" in _detail(response):
                        # transformers serve: 400 "prompt must be a string"; llama-cpp-python: 500 with
                        # pydantic's "validation errors ... 'prompt'"
                        raise RemoteError(
                            f"The server at {self.base_url} does not take token-id prompts (HTTP "
                            f"{response.status_code}: {_detail(response)[:120]}…). Start tracelab with "
                            "--server-prompt text (the default), or use a server that does (vLLM, SGLang, "
                            "llama.cpp's llama-server)."
                        )
                    self._raise_for_status(response)
                for line in response.iter_lines():
                    if stop_when is not None and stop_when():
                        return
                    chunk = self._parse_line(line)
                    if chunk is None:
                        continue
                    if chunk is _DONE:
                        return
                    received += 1
                    yield chunk
        except httpx.HTTPError as exc:
            if received and isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
                raise RemoteError(
                    f"The connection to {self.base_url} broke mid-stream after {received} chunks; the partial "
                    "trace was kept. Check the server's log (it may have crashed or been restarted) and retry."
                ) from None
            raise self._transport_error(exc) from None

    def _parse_line(self, line: str) -> Chunk | object | None:
        line = line.strip()
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            return _DONE
        try:
            event = json.loads(data)
        except ValueError:
            return None
        if "error" in event:
            detail = event["error"].get("message") if isinstance(event["error"], dict) else event["error"]
            raise RemoteError(f"The server at {self.base_url} reported an error mid-stream: {detail}")
        choices = event.get("choices") or [{}]
        choice = choices[0]
        usage = event.get("usage") or {}
        return Chunk(
            text=choice.get("text") or "",
            finish_reason=choice.get("finish_reason"),
            completion_tokens=usage.get("completion_tokens"),
            stop_reason=choice.get("stop_reason"),
            logprobs=parse_logprobs(choice),
        )

    # -- errors -----------------------------------------------------------------------------------

    def _transport_error(self, exc: httpx.HTTPError) -> RemoteError:
        url = self.base_url
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            return RemoteError(
                f"Could not reach the inference server at {url} ({_reason(exc)}). Start it (see the README's "
                "'Scale out' section) or fix --server / TRACELAB_SERVER."
            )
        if isinstance(exc, httpx.TimeoutException):
            return RemoteError(
                f"The inference server at {url} sent nothing for {self.read_timeout:.0f} s and the request was "
                "given up. The server may be overloaded or still loading the model; check its log and retry."
            )
        return RemoteError(f"The request to the inference server at {url} failed ({_reason(exc)}); check the server.")

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        url = self.base_url
        detail = _detail(response)
        if status in (401, 403):
            raise RemoteError(
                f"The inference server at {url} refused the request (HTTP {status}: wrong or missing API key). "
                "Set --api-key or TRACELAB_API_KEY to the key the server was started with."
            )
        path = response.request.url.path
        if "model" in detail.lower() and status in (400, 404, 422):
            raise RemoteError(
                f"The server at {url} does not serve model {self.model!r} ({detail}). Pass --server-model with "
                "a name from its /v1/models list, or leave it empty to use the first one listed."
            )
        if status in (404, 405) and path.endswith("/completions"):
            raise RemoteError(
                f"The server at {url} has no /v1/completions endpoint (HTTP {status}). tracelab forces thinking "
                "budgets over the text-completions API; vLLM, SGLang, llama.cpp's llama-server and transformers "
                "serve offer it. Check that --server ends in /v1."
            )
        if status == 404:
            raise RemoteError(
                f"Nothing answers at {url}{path.removeprefix('/v1')} (HTTP 404). Check that --server ends in /v1."
            )
        raise RemoteError(f"The inference server at {url} answered HTTP {status}: {detail}. Check the server's log.")


_DONE = object()


class _LogprobsRefused(Exception):
    """The server answered 400/422 about the ``logprobs`` field (CompletionClient.stream retries without it)."""


def normalise_base_url(url: str) -> str:
    """Strip blanks and a trailing slash; anything but an http(s) URL is a clear error."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise RemoteError(f"--server {url!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8000/v1")
    return url


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no details"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if value:
                return str(value)[:300]
    return str(body)[:200]
