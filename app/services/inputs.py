"""Reading what a person gives a use-case: problem sets, budget lists, the cap on k, gold answers.

The one place the services parse their shared inputs, so self-consistency, compare, sweep, the CLI and the
UI read a budget list, a gold answer, a prompt or a problem file the same way. Every refusal is an
``InvalidInput`` naming the input, its value and the fix. Knows nothing of Gradio, the engine or the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.errors import InvalidInput
from app.reasoning.answers import clean_answer, extract_answer
from app.resources import asset_path

#: The largest thinking budget a sweep or comparison accepts.
MAX_BUDGET = 32768


def check_samples(k: int, max_samples: int) -> int:
    """``k`` if it is between 1 and the server's cap (``AppSettings.max_samples``), else an ``InvalidInput`` saying
    how to get there. Self-consistency and sweeps both ask for k samples per generate, so both use this."""
    if k < 1:
        raise InvalidInput(f"k={k} must be at least 1")
    if k > max_samples:
        raise InvalidInput(
            f"k={k} is more than this server allows (max_samples={max_samples}); lower k or start with --max-samples {k}"
        )
    return k


@dataclass(frozen=True)
class Problem:
    """One question with its gold final answer (``solution`` keeps the worked answer when there is one)."""

    question: str
    gold: str
    solution: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"question": self.question, "gold": self.gold}


def load_problems(source: str | Path = "bundled", limit: int | None = None) -> list[Problem]:
    """Read a JSONL problem set; ``"bundled"`` is the GSM8K sample shipped in ``assets/``.

    Each line is an object with ``question`` and ``answer`` (a bare answer, or a GSM8K solution ending
    ``#### 42``); an optional ``final`` wins as the gold answer. ``InvalidInput`` names the file, the line
    and the fix for anything else; ``limit`` keeps the first N problems.
    """
    if limit is not None and limit < 1:
        raise InvalidInput(f"limit={limit} must be at least 1")
    path = asset_path("gsm8k_sample.jsonl") if str(source) == "bundled" else Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"problem file {path} does not exist; pass a JSONL file or 'bundled'")
    problems: list[Problem] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path.name} is not UTF-8 text ({exc.reason}); save it as UTF-8 JSONL") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problems.append(_parse_problem(line, f"{path.name} line {number}"))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise InvalidInput(f"{path.name} has no problems; each line must be a JSON object with question and answer")
    return problems


def _parse_problem(line: str, where: str) -> Problem:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where} is not valid JSON ({exc.msg}); each line must be one JSON object") from exc
    if not isinstance(row, dict):
        kind = {list: "an array", str: "a string", bool: "true or false", int: "a number", float: "a number"}
        raise InvalidInput(f"{where} is {kind.get(type(row), 'null')}, not a JSON object with question and answer")
    missing = [key for key in ("question", "answer") if key not in row and not (key == "answer" and "final" in row)]
    if missing:
        raise InvalidInput(f"{where} has no {' or '.join(missing)} field; each line needs question and answer")
    question = str(row["question"]).strip()
    if not question:
        raise InvalidInput(f"{where} has an empty question")
    solution = str(row.get("answer", "")).strip()
    gold = clean_answer(str(row["final"])) if row.get("final") is not None else normalise_gold(solution, strict=True)
    if not gold:
        raise InvalidInput(f"{where} has an answer with no final answer in it; give e.g. \"42\" or end with '#### 42'")
    return Problem(question=question, gold=gold, solution=solution)


def parse_budgets(text: str) -> list[int]:
    """``"0,64,256"`` -> ``[0, 64, 256]`` (sorted, duplicates dropped); 0 means thinking off."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise InvalidInput("no thinking budgets given; pass comma-separated token counts such as 0,64,256")
    budgets = set()
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise InvalidInput(
                f"budget {part!r} is not a whole number; pass e.g. 0,64,256 (0 = thinking off)"
            ) from None
        if not 0 <= value <= MAX_BUDGET:
            raise InvalidInput(f"budget {value} must be between 0 (thinking off) and {MAX_BUDGET}")
        budgets.add(value)
    return sorted(budgets)


def normalise_gold(gold: str | None, *, strict: bool = False) -> str | None:
    """A gold answer as given ("18", "$18", or a GSM8K solution ending "#### 18"), or None when blank.

    A solution (``####`` or several lines) gives its final answer. Typed in a tab or a flag, a bare answer is
    kept as typed and a solution with no final answer found stays whole; ``strict`` (a problem file's
    ``answer``) cleans a bare answer and gives None when a solution has no final answer.
    """
    if gold is None or not gold.strip():
        return None
    text = gold.strip()
    if "####" in text or "\n" in text:
        found = extract_answer(text)
        return found if strict else found or text
    return clean_answer(text) if strict else text


def require_prompt(prompt: str | None) -> None:
    """The one check that a request has a prompt: an ``InvalidInput`` saying so when it is blank."""
    if not (prompt or "").strip():
        raise InvalidInput("The prompt is empty: type a question first.")


def bundled_problems(limit: int = 50) -> list[Problem]:
    """The bundled GSM8K sample (``load_problems("bundled")``); empty, not an error, when assets/ is missing."""
    try:
        return load_problems("bundled", limit=limit)
    except (OSError, ValueError):
        return []


def load_examples(limit: int = 50) -> list[dict[str, str]]:
    """The bundled GSM8K problems offered as example prompts: question, worked answer and final number."""
    return [{"question": p.question, "answer": p.solution, "final": p.gold} for p in bundled_problems(limit)]
