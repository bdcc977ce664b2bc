"""Where a model comes from, and what a loaded one is: ``--model`` specs, the Hub, and :class:`LoadedModel`.

Shared by the full load (app.engine.loading) and the prompt side alone (app.engine.prompt_side): what a spec names
(a Hub id, a local folder, a ``.gguf`` file, ``bundled`` or ``tiny``), whether the Hub can be reached, the reasoning
format a tokenizer calls for, and the :class:`LoadError` every failure becomes. Knows nothing about weights,
prompts or storage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.reasoning_formats import FormatError, ReasoningFormat, detect_format, get_format
from app.errors import UserError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class LoadError(UserError, RuntimeError):
    """Loading failed; the message says what went wrong and how to fix it."""


@dataclass
class LoadedModel:
    """A model ready to generate, with what a header needs to describe it."""

    model: Any
    tokenizer: Any
    spec: str
    name: str
    format: ReasoningFormat
    device: str
    quantization: str
    dtype: str
    load_seconds: float
    source: str  # "bundled" | "tiny" | "hub" | "folder" | "gguf"
    precision: str = "fp32"  # how the weights run: "int4" | "nf4" | "int8" | "bf16" | "fp32"

    @property
    def is_small_demo(self) -> bool:
        """True for the bundled 135M model and the random tiny one: not real reasoning models."""
        return self.source in ("bundled", "tiny")

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "spec": self.spec,
            "format": self.format.name,
            "device": self.device,
            "quantization": self.quantization,
            "dtype": self.dtype,
            "precision": self.precision,
            "load_seconds": round(self.load_seconds, 2),
            "source": self.source,
        }


def classify_spec(spec: str) -> tuple[str, Path | None]:
    """What ``spec`` names: ``bundled``, ``tiny``, a ``gguf`` file, a model ``folder`` or a ``hub`` id (and its path)."""
    if spec in ("bundled", "tiny"):
        return spec, None
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix == ".gguf":
                return "gguf", path
            raise LoadError(f"{spec} is a file but not a .gguf model; pass a model folder, a .gguf file or a Hub id")
        if not (path / "config.json").is_file():
            raise LoadError(
                f"{spec} is a folder but not a model: it has no config.json. Pass a folder written by "
                "save_pretrained (config.json + weights), a .gguf file, a Hub id or 'bundled'."
            )
        return "folder", path
    if spec.endswith(".gguf") or spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise LoadError(f"No such file or folder: {spec}. Check the path, or pass a Hub id such as Qwen/Qwen3-4B.")
    return "hub", None


def format_for(tokenizer: Any, name: str, format_name: str | None) -> ReasoningFormat:
    """The reasoning format ``format_name`` names, or the one the tokenizer's chat template calls for."""
    try:
        fmt = get_format(format_name) if format_name else detect_format(tokenizer.chat_template, name)
    except FormatError as exc:
        raise LoadError(str(exc)) from exc
    if fmt.name != "plain" and not tokenizer.chat_template:
        raise LoadError(
            f"{name} has no chat template, so the {fmt.name!r} format can't build its prompt. "
            "Run with --format plain to use a plain 'User:/Assistant:' prompt."
        )
    return fmt


def hub_unreachable(repo_id: str) -> bool:
    """``repo_id`` is not in the local Hub cache and the Hub can't be reached: loading it would fail."""
    return not in_hub_cache(repo_id) and not hub_reachable()


def in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe, so an offline machine fails in seconds instead of after a minute of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), for a one-line LoadError."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
