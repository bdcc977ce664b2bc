"""Raw inputs -> :class:`GenerationSettings`: the one builder every front end calls.

The Playground's controls, the analysis tabs' controls, the CLI's flags (and an API body) all hand over a
mapping of field name -> raw value; :func:`build_settings` reads each one the same way against the field's
declaration in :class:`app.domain.GenerationSettings` (its default, its kind) and builds the settings, which
validate themselves once, here. A blank value (None or "") takes the ``base`` settings' value, so a front end
with other starting values (the analysis tabs' 128-token budget) says so with its ``base``.

Also owns the one reading of a whole number (:func:`as_int`), of a number (:func:`as_float`) and of a seed
(:func:`as_seed`: -1, blank or any negative number = "not fixed").
Every refusal is an :class:`app.errors.InvalidInput` naming the field. Knows nothing of Gradio or argparse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, fields
from typing import Any

from app.domain import EFFORT_BUDGETS, SAMPLING_TEMPERATURE, GenerationSettings
from app.errors import InvalidInput

#: The effort that means "my own budget": ``effort=None`` with the max (and min) thinking tokens given.
CUSTOM = "custom"
#: What the Playground's effort control offers: the presets, then a custom budget.
EFFORTS: tuple[str, ...] = (*EFFORT_BUDGETS, CUSTOM)
#: The settings the analysis tabs start from (their number boxes start with these values): an explicit budget.
ANALYSIS_BASE = GenerationSettings(
    effort=None, max_thinking_tokens=128, max_answer_tokens=128, temperature=SAMPLING_TEMPERATURE
)

FIELDS: dict[str, Field] = {f.name: f for f in fields(GenerationSettings)}


def label(name: str) -> str:
    """How a field is named in a message: ``max_answer_tokens`` -> "max answer tokens"."""
    return name.replace("_", " ")


def blank(value: Any) -> bool:
    return value is None or value == ""


def as_int(value: Any, name: str, default: int | None = None) -> int | None:
    """A whole number from a number box, a flag or an API argument; ``default`` when it is blank or None.

    Gradio hands numbers over as floats (``3.0``); a fraction or text is an ``InvalidInput`` naming the field.
    """
    if blank(value):
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # exact, however large (float() would round it or overflow)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{name} must be a whole number, got {str(value)[:40]!r}") from None
    if not number.is_integer():
        raise InvalidInput(f"{name} must be a whole number, got {value!r}")
    return int(number)


def as_float(value: Any, name: str, default: float) -> float:
    """A number from a slider, a flag or an API argument; ``default`` when it is blank."""
    if blank(value):
        return default
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{name} must be a number, got {str(value)[:40]!r}") from None


def as_seed(value: Any) -> int | None:
    """-1 (the controls' default), blank or any negative number means "not fixed"."""
    seed = as_int(value, "seed")
    return None if seed is None or seed < 0 else seed


def _read(name: str, value: Any, default: Any) -> Any:
    """One raw value as its field's kind; ``default`` when blank."""
    kind = FIELDS[name].metadata["kind"]
    if name == "seed":
        return as_seed(value) if not blank(value) else default
    if kind is bool:
        if value is None:
            return default
        if not isinstance(value, bool):  # bool("false") is True: a string or number would read backwards
            raise InvalidInput(f"{label(name)} takes true or false, not {value!r}.")
        return value
    if kind is int:
        return as_int(value, label(name), default)
    if kind is float:
        return as_float(value, label(name), default)
    return default if blank(value) else str(value)


def _effort(value: Any, default: str | None) -> str | None:
    """The effort as given ("custom" -> None: an explicit budget); a name not offered is refused."""
    if blank(value):
        return default
    effort = str(value).lower()
    if effort not in EFFORTS:
        raise InvalidInput(f"effort={effort!r} is not one of {', '.join(EFFORTS)}")
    return None if effort == CUSTOM else effort


def build_settings(raw: Mapping[str, Any], base: GenerationSettings | None = None) -> GenerationSettings:
    """Settings from raw inputs: ``raw`` maps field names to raw values; a missing or blank one takes ``base``'s.

    ``effort="custom"`` (the Playground's) is an explicit budget: it needs ``max_thinking_tokens``, and a blank
    minimum is 0. A given ``samples`` applies :meth:`GenerationSettings.for_samples` (several greedy samples
    would be identical, so they sample). Any bad value is an ``InvalidInput`` naming the field; the settings
    are validated here, once.
    """
    base = base or GenerationSettings()
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name in ("effort", "samples"):
            continue
        values[name] = _read(name, raw.get(name), getattr(base, name))
    values["effort"] = _effort(raw.get("effort"), base.effort)
    if str(raw.get("effort") or "").lower() == CUSTOM:
        if values["max_thinking_tokens"] is None:
            raise InvalidInput("a custom budget needs max thinking tokens; type a number, e.g. 512")
        if blank(raw.get("min_thinking_tokens")):
            values["min_thinking_tokens"] = 0
    samples = as_int(raw.get("samples"), "samples")
    try:
        settings = GenerationSettings(**values)
        return settings if samples is None else settings.for_samples(samples)
    except InvalidInput:
        raise
    except (TypeError, ValueError) as exc:  # GenerationSettings' own message, naming the field and the fix
        raise InvalidInput(str(exc)) from None
