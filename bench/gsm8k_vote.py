"""Majority voting over OpenAI's four GSM8K example solvers (1,319 test questions x 4 solutions).

Prints each solver's accuracy, the best single one, the majority of the four, and how often our
answer extraction + comparison reproduces the file's own ``is_correct`` flags.

Ties (2-2, or 1-1-1-1) go to the answer that appears first in the solver order used for that
line; two orders are reported: the file's (6B first) and best-single-solver first.

    .venv/bin/python bench/gsm8k_vote.py [--path tests/data/gsm8k_example_model_solutions.jsonl.gz]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from app.reasoning.answers import answer_key, answers_equal, extract_answer
from app.reasoning.vote import vote

MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "gsm8k_example_model_solutions.jsonl.gz"


def load(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="example_model_solutions.jsonl(.gz)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = load(args.path)
    n = len(rows)

    golds = [extract_answer(row["ground_truth"]) for row in rows]
    predicted = {m: [extract_answer(row[m]["solution"]) for row in rows] for m in MODELS}
    ours = {m: [answers_equal(p, g) for p, g in zip(predicted[m], golds, strict=True)] for m in MODELS}
    flags = {m: [row[m]["is_correct"] for row in rows] for m in MODELS}
    agree = sum(o == f for m in MODELS for o, f in zip(ours[m], flags[m], strict=True))

    print(f"GSM8K test questions: {n}, solutions: {n * len(MODELS)} ({args.path.name})")
    print(f"{'solver':<20} {'accuracy (is_correct)':>22} {'accuracy (ours)':>16}")
    for m in MODELS:
        print(f"{m:<20} {sum(flags[m]) / n:>22.2%} {sum(ours[m]) / n:>16.2%}")
    best = max(MODELS, key=lambda m: sum(flags[m]))
    print(f"best single solver: {best} at {sum(flags[best]) / n:.2%}")

    for label, order in (
        ("file order, 6B first", MODELS),
        ("best solver first", sorted(MODELS, key=lambda m: -sum(flags[m]))),
    ):
        results = [vote([predicted[m][i] for m in order], golds[i]) for i in range(n)]
        correct = sum(bool(r.majority_correct) for r in results)
        ties = sum(1 for r in results if len(r.counts) > 1 and r.counts[0][1] == r.counts[1][1])
        print(f"majority of 4 (ties -> first answer in {label}): {correct / n:.2%} ({correct}/{n}; {ties} ties)")
    unanimous = sum(1 for i in range(n) if len({answer_key(predicted[m][i] or "") for m in MODELS}) == 1)
    oracle = sum(1 for i in range(n) if any(flags[m][i] for m in MODELS))
    print(f"all four give the same answer: {unanimous}/{n}; any of the four correct (oracle): {oracle / n:.2%}")
    print(f"extraction + comparison reproduces is_correct: {agree}/{n * len(MODELS)}")
    print(f"took {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
