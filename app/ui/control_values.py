"""Control values -> typed values: what every tab does with a Gradio number box before calling a service.

Owns the reading of a row id (:func:`as_id`) and the analysis tabs' controls as :class:`GenerationSettings`
(:func:`analysis_settings`). A whole number and a seed are read by ``app.services.settings_input`` (re-exported
here, so every tab reads them the same way); settings are built there too, by the one builder the Playground and
the CLI call, and validate themselves with their own messages (``max_answer_tokens=0`` is passed through for
them to refuse).
"""

from __future__ import annotations

from typing import Any

from app.domain import GenerationSettings
from app.errors import InvalidInput
from app.services.settings_input import ANALYSIS_BASE, as_int, as_seed, build_settings

__all__ = ["analysis_settings", "as_id", "as_int", "as_seed"]


def as_id(value: Any, name: str) -> int:
    """A row id (run, sample, step) from a number box or an API argument: a whole number from 1 up."""
    number = as_int(value, f"{name} number")
    if number is None:
        raise InvalidInput(f"Pick a {name} first (its number is empty).")
    if not 1 <= number <= 2**63 - 1:
        raise InvalidInput(f"There is no {name} #{number}: {name} numbers are whole numbers from 1 up.")
    return number


def analysis_settings(thinking: bool, budget: Any, max_answer: Any, temperature: Any, seed: Any) -> GenerationSettings:
    """The analysis tabs' controls as settings with an explicit budget (``effort=None``; blank fields take the
    tabs' starting values, :data:`ANALYSIS_BASE`); an ``InvalidInput`` names a bad one."""
    raw = {"max_thinking_tokens": budget, "max_answer_tokens": max_answer, "temperature": temperature, "seed": seed}
    return build_settings({"thinking": bool(thinking), **raw}, ANALYSIS_BASE)
