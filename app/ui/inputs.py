"""Control values -> typed values: what every tab does with a Gradio number box before calling a service.

Owns the one reading of a whole-number field (blank = "not given", a bad value a ``ValueError`` naming the
field) and of the seed field (-1, blank or any negative number = "not fixed"), and the analysis tabs'
controls as :class:`GenerationSettings`. Does not validate settings: ``GenerationSettings`` does as it is built,
with its own messages, so a value such as ``max_answer_tokens=0`` is passed through for it to refuse.
"""

from __future__ import annotations

from typing import Any

from app.domain import SAMPLING_TEMPERATURE, GenerationSettings

#: What the analysis tabs use when a field is left blank (their number boxes start with these values).
DEFAULT_BUDGET = 128
DEFAULT_ANSWER_TOKENS = 128


def as_int(value: Any, name: str, default: int | None = None) -> int | None:
    """A whole number from a number box or an API argument; ``default`` when it is blank or None.

    Gradio hands numbers over as floats (``3.0``); a fraction or text is a ``ValueError`` naming the field.
    """
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def as_seed(value: Any) -> int | None:
    """-1 (the controls' default), blank or any negative number means "not fixed"."""
    seed = as_int(value, "seed")
    return None if seed is None or seed < 0 else seed


def analysis_settings(thinking: bool, budget: Any, max_answer: Any, temperature: Any, seed: Any) -> GenerationSettings:
    """The analysis tabs' controls as settings with an explicit budget (``effort=None``); a ``ValueError`` names a
    bad one (``GenerationSettings`` validates itself)."""
    return GenerationSettings(
        thinking=bool(thinking),
        effort=None,
        max_thinking_tokens=as_int(budget, "max thinking tokens", DEFAULT_BUDGET),
        max_answer_tokens=as_int(max_answer, "max answer tokens", DEFAULT_ANSWER_TOKENS),  # type: ignore[arg-type]
        temperature=float(temperature if temperature is not None else SAMPLING_TEMPERATURE),
        seed=as_seed(seed),
    )
