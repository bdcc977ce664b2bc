"""Builders shared by the store tests (no tests here): a small GenerationResult, its steps, fresh databases.

The store tests run on SQLite files in tmp_path. Set ``TRACELAB_TEST_POSTGRES_URL`` (a database the tests may
wipe, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/tracelab_test) to run the backend-neutral ones on
Postgres too.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import create_engine, text

from app.domain import GenerationResult, GenerationSettings, SampleResult, Step
from app.store import Store, open_store

POSTGRES_URL = os.environ.get("TRACELAB_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]

THINKING = "First, 2 + 2 = 4. Then 4 * 3 = 12. So the answer is 12."
SENTENCES = ["First, 2 + 2 = 4.", "Then 4 * 3 = 12.", "So the answer is 12."]


def new_store(tmp_path: Path, name: str = "tracelab.db") -> Store:
    return open_store(f"sqlite:///{tmp_path / name}")


def fresh_url(backend: str, tmp_path: Path) -> str:
    """The URL of an empty database: a new SQLite file, or the test Postgres database wiped clean."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'tracelab.db'}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return POSTGRES_URL


def row_count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # table: a constant in the test


def make_result(
    prompt: str = "What is (2 + 2) * 3?",
    *,
    model: str = "tiny/model",
    n_samples: int = 3,
    answers: list[str] | None = None,
    stop_reason: str = "end",
) -> GenerationResult:
    answers = answers or [str(12 + i) for i in range(n_samples)]
    samples = [
        SampleResult(
            index=i,
            raw_text=f"<think>{THINKING}</think>The answer is {answers[i]}.",
            thinking=THINKING,
            answer=f"The answer is {answers[i]}.",
            thinking_tokens=20 + i,
            answer_tokens=5,
            stop_reason=stop_reason,  # type: ignore[arg-type]
            continuations=i,
            seconds=1.5 + i,
            time_to_first_token=0.1,
            thinking_seconds=1.0,
            tokens_per_second=30.0,
            extracted_answer=answers[i],
        )
        for i in range(n_samples)
    ]
    return GenerationResult(
        model=model,
        format="prompted",
        settings=GenerationSettings(seed=7, samples=n_samples, temperature=0.7),
        samples=samples,
        prompt=prompt,
        messages=[{"role": "user", "content": "earlier turn"}],
        seconds=4.5,
    )


def make_steps(result: GenerationResult) -> list[list[Step]]:
    """Three thinking steps (exact spans of ``THINKING``) and one answer step per sample."""
    per_sample = []
    for sample in result.samples:
        steps = []
        for sentence in SENTENCES:
            start = THINKING.index(sentence)
            steps.append(Step(index=len(steps), text=sentence, start=start, end=start + len(sentence)))
        steps.append(Step(index=len(steps), text=sample.answer, start=0, end=len(sample.answer), source="answer"))
        per_sample.append(steps)
    return per_sample


def save_example(store: Store, result: GenerationResult | None = None) -> int:
    """Save ``result`` (default: ``make_result()``) with its steps; return the run id."""
    result = result or make_result()
    return store.save_run(result, make_steps(result))
