"""Shared fixtures: the real bundled model (converted once per machine), the tiny random model, real SQLite
stores in tmp_path, the real app on a loopback port with its gradio clients and browser pages. Nothing here
fakes the model or the database.

Each family has one definition here; where tests genuinely need something different, the variant has its own
name or setting: ``store`` runs on every test backend (a module's ``STORE_BACKENDS`` may name fewer);
``client`` is one gradio session per module and ``fresh_client`` one per test, both on ``served_url`` (the
tiny app unless a module overrides it); ``page`` is a fresh browser page per test and ``module_page`` one
per module; ``eager_stopper`` is the tiny model rigged to want to stop at every step; ``cpu_hog`` keeps every
core busy for one test, and ``load`` runs a test quiet and again under it.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from store_support import BACKENDS, fresh_url

from app.engine.bundled import default_cache_dir, ensure_bundled
from app.store import Store, open_store

if TYPE_CHECKING:
    from gradio_client import Client
    from playwright.sync_api import Page


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


@pytest.fixture(scope="module")
def eager_stopper(tiny_loaded):
    """The tiny model with a bias that makes end-of-sequence its top choice at every step (a deep copy, one
    per test module: the shared ``tiny_loaded`` keeps its head)."""
    import torch

    from app.engine.generation import Engine

    loaded = copy.copy(tiny_loaded)
    model = copy.deepcopy(tiny_loaded.model)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    head.weight.data = model.lm_head.weight.data.clone()
    head.bias.data.zero_()
    head.bias.data[tiny_loaded.tokenizer.eos_token_id] = 1e4
    model.lm_head = head
    loaded.model = model
    return Engine(loaded)


# --- stores: real databases, fresh for each test ------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tracelab.db'}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses ``store`` once per backend: every test backend (``store_support.BACKENDS``), or
    the module's ``STORE_BACKENDS`` where it names fewer (e.g. ``["sqlite"]`` when the test also hands
    ``db_url`` to the CLI)."""
    if "store" in metafunc.fixturenames:
        metafunc.parametrize("store", getattr(metafunc.module, "STORE_BACKENDS", BACKENDS), indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on the test's backend: a SQLite file in tmp_path (the one at ``db_url``), or the PostgreSQL
    database in ``TRACELAB_TEST_POSTGRES_URL`` (wiped first; see store_support). Parametrised by
    ``pytest_generate_tests`` above."""
    store = open_store(fresh_url(request.param, tmp_path))
    yield store
    store.close()


@pytest.fixture
def tiny_runtime(tiny_loaded, tiny_engine, db_url: str, tmp_path: Path):
    from app.services.runtime import Runtime
    from app.settings import AppSettings

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


@pytest.fixture(scope="module")
def served_url(tiny_app) -> str:
    """The URL of the app that ``client`` and ``fresh_client`` talk to: the tiny app; a module serving another
    runtime overrides this fixture."""
    return tiny_app[1]


@pytest.fixture(scope="module")
def client(served_url: str) -> Client:
    """One gradio_client session on ``served_url`` for the whole test module (its session state carries over)."""
    from gradio_client import Client

    return Client(served_url, verbose=False)


@pytest.fixture
def fresh_client(served_url: str) -> Client:
    """A new gradio_client session on ``served_url`` for each test (session state, e.g. the chat, starts empty)."""
    from gradio_client import Client

    return Client(served_url, verbose=False)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium (skips, or fails under TRACELAB_REQUIRE_BROWSER=1, when it is missing)."""
    from ui_support import chromium

    with chromium() as b:
        yield b


@pytest.fixture
def page(browser) -> Iterator[Page]:
    """A fresh page for each test (1400x1050, 60 s timeouts) that counts injected scripts in ``window.__pwned``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1050})
    context.add_init_script("window.__pwned = 0")
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def module_page(browser) -> Iterator[Page]:
    """One page (1400x1000) for the whole test module, from the session's one Chromium (a second sync
    Playwright in this process would clash with it)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


# --- load: a busy machine, as CI and a shared server are ------------------------------------------------------

#: Seconds a hog process spins at most, should a test run never reach its teardown (a killed pytest).
HOG_SECONDS = 300


@pytest.fixture
def cpu_hog() -> Iterator[int]:
    """Keep every core busy while the test runs: one spinning process per core (at least two), each ending by
    itself after :data:`HOG_SECONDS` and killed at teardown. Yields how many spin. For the Stop, cancel and save
    tests, so a race that only shows on a loaded machine shows up in CI rather than for a user."""
    spin = f"import time\nend = time.monotonic() + {HOG_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(max(2, os.cpu_count() or 2))]
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(timeout=30)


@pytest.fixture(params=["quiet", "loaded"])
def load(request: pytest.FixtureRequest) -> str:
    """Run the test twice: on the machine as it is, and with every core busy (``cpu_hog``)."""
    if request.param == "loaded":
        request.getfixturevalue("cpu_hog")
    return request.param
