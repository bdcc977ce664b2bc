"""The prompt side of a model without its weights: tokenizer, chat template and reasoning format.

With ``--server`` the weights live on the inference server; tracelab still needs the model's tokenizer
and chat template to build raw prompts, detect the reasoning format and count tokens. This loads just
those, for the same ``--model`` specs as app.engine.loading (Hub id, folder, ``.gguf``, ``bundled``,
``tiny``), into a :class:`LoadedModel` whose ``model`` is None. Knows nothing about servers or storage.
"""

from __future__ import annotations

import time
from pathlib import Path

from app.engine.bundled import BUNDLED_NAME, BundledModelError, ensure_bundled
from app.engine.loading import LoadedModel, LoadError, _classify, _first_line, _hub_reachable, _in_hub_cache
from app.engine.reasoning_formats import FormatError, detect_format, get_format


def load_prompt_side(
    spec: str = "bundled", *, format_name: str | None = None, cache_dir: Path | None = None, server: str = ""
) -> LoadedModel:
    """Load ``spec``'s tokenizer and chat template only; ``server`` is recorded as the device."""
    from transformers import AutoTokenizer

    started = time.perf_counter()
    kind, path = _classify(spec)
    kwargs: dict[str, str] = {}
    try:
        if kind in ("bundled", "tiny"):
            source, name = str(ensure_bundled(cache_dir)), BUNDLED_NAME
        elif kind == "gguf":
            assert path is not None
            source, name, kwargs = str(path.parent), path.name, {"gguf_file": path.name}
        else:
            source, name = str(path or spec), spec
    except BundledModelError as exc:
        raise LoadError(str(exc)) from exc
    if kind == "hub" and not _in_hub_cache(spec) and not _hub_reachable():
        raise LoadError(
            f"Could not fetch the tokenizer of {spec!r}: the Hugging Face Hub is unreachable and it is not in the "
            "local cache. Pass --model as a local folder holding the model's tokenizer files, or connect and retry."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise LoadError(f"Could not load the tokenizer of {spec!r}: {_first_line(exc)}") from exc
    try:
        fmt = get_format(format_name) if format_name else detect_format(tokenizer.chat_template, name)
    except FormatError as exc:
        raise LoadError(str(exc)) from exc
    if fmt.name != "plain" and not tokenizer.chat_template:
        raise LoadError(
            f"{name} has no chat template, so the {fmt.name!r} format can't build its prompt. "
            "Run with --format plain to use a plain 'User:/Assistant:' prompt."
        )
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        spec=spec,
        name=name,
        format=fmt,
        device=f"server {server}" if server else "server",
        quantization="set by the server",
        dtype="",
        load_seconds=time.perf_counter() - started,
        source="bundled" if kind == "tiny" else kind,
    )
