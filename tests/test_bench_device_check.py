"""The GPU check script (bench/device_check.sh) and the streamer path it watches on CUDA.

No GPU is available here or in CI, so the script's logic is exercised with ``--device cpu --quick`` on
the bundled model, and asking for CUDA on a CPU-only machine must give a clear JSON error, not a traceback.
The "one step late" streamer path, which only a GPU produces naturally, is driven by hand on the tiny model.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
from pathlib import Path

import pytest
import torch

from app.engine.budget import BudgetPlan, ThinkingBudgetProcessor
from app.engine.decode import TickStreamer
from app.engine.special_tokens import stop_token_ids

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "device_check.sh"


def test_a_late_streamed_step_is_not_counted_twice(tiny_loaded):
    """On GPU, generate may hand a step to the streamer after the processor already took it from input_ids."""
    tok = tiny_loaded.tokenizer
    plan = BudgetPlan.build(
        tok,
        thinking=True,
        max_thinking=10,
        min_thinking=0,
        max_continuations=0,
        max_answer=4,
        close_tag="</think>",
        continuation="Wait",
        answer_cue="",
        stop_ids=stop_token_ids(tok),
    )
    prompt = torch.tensor([[1, 2, 3]])
    processor = ThinkingBudgetProcessor(plan, tok, batch_size=1, prompt_length=3)
    streamer = TickStreamer(processor, queue.Queue())
    streamer.put(prompt)  # generate first hands over the prompt
    processor.sync(torch.tensor([[1, 2, 3, 100]]))  # the next step's processor call ingested token 100 already
    streamer.put(torch.tensor([100]))  # ... and only now the streamer sees it: the late path
    assert processor.generated == 1 and processor.rows[0].ids == [100]
    streamer.put(torch.tensor([101]))  # on time: the streamer ingests it
    assert processor.generated == 2 and processor.rows[0].ids == [100, 101]
    assert processor.rows[0].thinking_tokens == 2


def test_cuda_check_on_a_cpu_only_machine_is_a_clear_json_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["ok"] is False
    assert any("torch.cuda.is_available() is False" in e for e in report["errors"])


@pytest.mark.bundled
def test_dry_run_on_cpu_prints_one_json_with_every_check():
    out = subprocess.run(
        [str(SCRIPT), "--device", "cpu", "--quick", "--precisions", "nf4,bf16", "--budget-s", "3000"],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "DEVICE_CHECK_LIMIT_S": "1700"},  # a dry run on a busy CPU may take longer than 450 s
    )
    report = json.loads(out.stdout)  # stdout is exactly one JSON object; progress went to stderr
    assert "[device_check]" in out.stderr
    for precision in ("nf4", "bf16"):
        measured = report[f"load_decode_{precision}"]
        assert measured["ok"] and measured["precision"] == precision, measured
        assert measured["load_s"] > 0 and measured["peak_mib"] > 0 and measured["decode_tok_s"] > 0
    assert report["checks_precision"] == "nf4"
    assert report["engine_over_generate"]["ok"] and report["engine_over_generate"]["ratio"] > 0
    assert report["batched_k8_over_sequential"]["throughput_ratio"] > 0
    checks = report["budget_checks"]
    for name in ("exact_60_60", "no_think", "streamed_counts"):  # --quick runs these; CUDA runs all six
        assert checks[name]["ok"], (name, checks[name])
    assert checks["exact_60_60"]["thinking_tokens"] == 60
    assert checks["streamed_steps"] > 60 and checks["late_streamer_steps"] >= 0
    assert report["ok"] is True and out.returncode == 0
