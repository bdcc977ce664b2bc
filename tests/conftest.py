"""Shared fixtures: the real bundled model (converted once per machine), the tiny random model,
and real SQLite stores in tmp_path. Nothing here fakes the model or the database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.engine.bundled import default_cache_dir, ensure_bundled


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory):
    """Runs started by tests never write to the user's real database."""
    old = os.environ.get("TRACELAB_DATA_DIR")
    os.environ["TRACELAB_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    if old is None:
        os.environ.pop("TRACELAB_DATA_DIR", None)
    else:
        os.environ["TRACELAB_DATA_DIR"] = old


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The machine's model cache (~/.cache/tracelab or $TRACELAB_CACHE_DIR): the conversion is paid once."""
    return default_cache_dir()


@pytest.fixture(scope="session")
def bundled_dir(cache_dir: Path) -> Path:
    return ensure_bundled(cache_dir)


@pytest.fixture(scope="session")
def smol_tokenizer_dir(bundled_dir: Path) -> Path:
    """A folder with the SmolLM2 tokenizer files (the bundled model's cache)."""
    return bundled_dir


@pytest.fixture(scope="session")
def tiny_loaded(bundled_dir: Path, cache_dir: Path):
    from app.engine.loading import load_model

    return load_model("tiny", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def tiny_engine(tiny_loaded):
    from app.engine.generation import Engine

    return Engine(tiny_loaded)


@pytest.fixture(scope="session")
def bundled_loaded(bundled_dir: Path, cache_dir: Path):
    """The bundled model in plain fp32: the reference every machine runs alike (``auto`` is int4 or NF4 on
    CPUs that run them fast, see ``cpu_auto_quantize``; those have their own fixtures, ``int4_loaded`` and
    ``nf4_loaded``)."""
    from app.engine.loading import load_model

    return load_model("bundled", quantize="none", dtype="float32", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def bundled_engine(bundled_loaded):
    from app.engine.generation import Engine

    return Engine(bundled_loaded)


# --- the remote engine: one real `transformers serve` per test session ---------------------------------


@pytest.fixture(scope="session")
def inference_server(bundled_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(url, log path) of `transformers serve` running the bundled model on 127.0.0.1, shut down at the end.

    Skips when `transformers[serving]` is not installed; fails (with the server's log) when it is but
    the server does not come up in time.
    """
    from server_support import serve_command, transformers_serve

    from app.ui.server import free_port

    if serve_command() is None:
        pytest.skip('transformers serve is not installed: pip install "transformers[serving]" (the test extra)')
    log_path = tmp_path_factory.mktemp("server") / "transformers-serve.log"
    try:
        with transformers_serve(bundled_dir, free_port(), log_path) as url:
            yield url, log_path
    except RuntimeError as exc:
        pytest.fail(f"could not start the inference server for the remote-engine tests: {exc}")


@pytest.fixture(scope="session")
def remote_engine(inference_server, cache_dir: Path):
    """The remote engine on the session's server, with the bundled model's tokenizer."""
    from app.engine.prompt_side import load_prompt_side
    from app.engine.remote import RemoteEngine
    from app.engine.remote_client import CompletionClient

    client = CompletionClient(inference_server[0])
    yield RemoteEngine(load_prompt_side("bundled", cache_dir=cache_dir, server=client.base_url), client)
    client.close()


@pytest.fixture(params=["local", "remote"])
def engine(request):
    """The engine contract runs on both engines over the bundled model: in-process and on a real server."""
    return request.getfixturevalue("bundled_engine" if request.param == "local" else "remote_engine")


@pytest.fixture(scope="session")
def nf4_loaded(bundled_dir: Path, cache_dir: Path):
    """The bundled model in bitsandbytes NF4 on the CPU, loaded once per test session."""
    from app.engine.loading import load_model

    return load_model("bundled", quantize="4bit", cache_dir=cache_dir, device="cpu")


@pytest.fixture(scope="session")
def nf4_engine(nf4_loaded):
    from app.engine.generation import Engine

    return Engine(nf4_loaded)


@pytest.fixture(scope="session")
def int4_loaded(bundled_dir: Path, cache_dir: Path):
    """The bundled model on torch's int4 CPU kernel (``--quantize int4``), loaded once per test session."""
    from app.engine.loading import cpu_int4_available, load_model

    if not cpu_int4_available():
        pytest.skip("int4 needs torch >= 2.6 (_weight_int4pack_mm_for_cpu)")
    return load_model("bundled", quantize="int4", cache_dir=cache_dir, device="cpu")


@pytest.fixture(scope="session")
def int4_engine(int4_loaded):
    from app.engine.generation import Engine

    return Engine(int4_loaded)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tracelab.db'}"


@pytest.fixture
def tiny_runtime(tiny_loaded, tiny_engine, db_url: str, tmp_path: Path):
    from app.services.runtime import Runtime
    from app.settings import AppSettings
    from app.store.db import open_store

    settings = AppSettings.from_env(model="tiny", db=db_url, data_dir=str(tmp_path))
    return Runtime(settings=settings, loaded=tiny_loaded, engine=tiny_engine, store=open_store(db_url))


# --- UI: the real app on a free loopback port, shared by a test module --------------------------------


@pytest.fixture(scope="module")
def tiny_app(tiny_loaded, tiny_engine, tmp_path_factory: pytest.TempPathFactory):
    """(runtime, url) of the real app over the tiny model and its own SQLite file, for one test module."""
    from ui_support import make_runtime, running_app

    rt = make_runtime(tiny_loaded, tiny_engine, tmp_path_factory.mktemp("ui-tiny") / "tracelab.db")
    with running_app(rt) as url:
        yield rt, url


@pytest.fixture(scope="module")
def bundled_app(bundled_loaded, bundled_engine, tmp_path_factory: pytest.TempPathFactory):
    """(runtime, url) of the real app over the bundled SmolLM2-135M, for one test module."""
    from ui_support import make_runtime, running_app

    rt = make_runtime(bundled_loaded, bundled_engine, tmp_path_factory.mktemp("ui-bundled") / "tracelab.db")
    with running_app(rt) as url:
        yield rt, url


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (skips, or fails under TRACELAB_REQUIRE_BROWSER=1, when it is missing)."""
    from ui_support import chromium

    with chromium() as b:
        yield b
