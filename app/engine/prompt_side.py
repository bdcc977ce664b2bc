"""The prompt side of a model without its weights: tokenizer, chat template and reasoning format.

With ``--server`` the weights live on the inference server; tracelab still needs the model's tokenizer
and chat template to build raw prompts, detect the reasoning format and count tokens. This loads just
those, for the same ``--model`` specs as app.engine.loading (app.engine.model_source) (Hub id, folder, ``.gguf``, ``bundled``,
``tiny``), into a :class:`LoadedModel` whose ``model`` is None. Knows nothing about servers or storage.
"""

from __future__ import annotations

import time
from pathlib import Path

from app.engine.bundled import BUNDLED_NAME, BundledModelError, ensure_bundled
from app.engine.model_source import LoadedModel, LoadError, classify_spec, first_line, format_for, hub_unreachable


def load_prompt_side(
    spec: str = "bundled", *, format_name: str | None = None, cache_dir: Path | None = None, server: str = ""
) -> LoadedModel:
    """Load ``spec``'s tokenizer and chat template only; ``server`` is recorded as the device."""
    from transformers import AutoTokenizer

    started = time.perf_counter()
    kind, path = classify_spec(spec)
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
    if kind == "hub" and hub_unreachable(spec):
        raise LoadError(
            f"Could not fetch the tokenizer of {spec!r}: the Hugging Face Hub is unreachable and it is not in the "
            "local cache. Pass --model as a local folder holding the model's tokenizer files, or connect and retry."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise LoadError(f"Could not load the tokenizer of {spec!r}: {first_line(exc)}") from exc
    fmt = format_for(tokenizer, name, format_name)
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
