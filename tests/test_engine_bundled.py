"""The issue's acceptance checks on the real bundled SmolLM2-135M (prompted reasoning format)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.domain import GenerationSettings

pytestmark = pytest.mark.bundled
PROMPT = "What is 17*23?"


def test_bundled_model_loads_with_the_prompted_format(bundled_loaded):
    assert bundled_loaded.format.name == "prompted"
    assert bundled_loaded.source == "bundled" and bundled_loaded.quantization == "none"
    assert bundled_loaded.is_small_demo


def test_cli_exact_budget_json(bundled_dir, tmp_path):
    env = dict(os.environ, TRACELAB_CACHE_DIR=str(bundled_dir.parent.parent), TRACELAB_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "generate",
            PROMPT,
            "--min-thinking-tokens",
            "60",
            "--max-thinking-tokens",
            "60",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    payload = json.loads(out.stdout)
    assert set(payload) >= {"model", "format", "settings", "samples"}
    sample = payload["samples"][0]
    assert sample["thinking_tokens"] == 60
    assert sample["stop_reason"] == "budget_cut"
    assert sample["answer"].strip()
    assert set(sample) >= {"thinking", "answer", "thinking_tokens", "answer_tokens", "stop_reason", "seconds"}
    assert "loading model" in out.stderr  # progress goes to stderr, stdout is pure JSON


def test_max_budget_is_never_exceeded(bundled_engine):
    result = bundled_engine.generate(
        PROMPT, GenerationSettings(max_thinking_tokens=40, max_answer_tokens=30, samples=4, temperature=0.8, seed=5)
    )
    assert all(s.thinking_tokens <= 40 and s.answer for s in result.samples)


def test_min_budget_keeps_it_thinking_with_wait(bundled_engine):
    s = bundled_engine.generate(
        PROMPT, GenerationSettings(min_thinking_tokens=80, max_thinking_tokens=200, max_answer_tokens=30)
    ).samples[0]
    assert s.thinking_tokens >= 80
    assert "Wait" in s.thinking and s.continuations >= 1


def test_no_think_returns_empty_thinking(bundled_engine):
    s = bundled_engine.generate(PROMPT, GenerationSettings(thinking=False, max_answer_tokens=40)).samples[0]
    assert s.thinking == "" and s.thinking_tokens == 0 and s.answer


def test_seeded_samples_are_reproducible(bundled_engine):
    settings = GenerationSettings(max_thinking_tokens=48, max_answer_tokens=24, samples=4, temperature=0.7, seed=1)
    timing = {"seconds", "time_to_first_token", "thinking_seconds", "tokens_per_second"}
    first = [s.to_dict() for s in bundled_engine.generate(PROMPT, settings).samples]
    second = [s.to_dict() for s in bundled_engine.generate(PROMPT, settings).samples]
    strip = [{k: v for k, v in s.items() if k not in timing} for s in first]
    assert strip == [{k: v for k, v in s.items() if k not in timing} for s in second]
