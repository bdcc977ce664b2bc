"""How a setting field declares itself: its default, help, choices and numeric :class:`Range`, once.

``app.domain.GenerationSettings`` declares each field with :func:`setting_field`; validation, the UI's sliders and
number boxes and the CLI's flags and help all read that declaration. Imports nothing from ``app``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Range:
    """The values a numeric setting takes: from ``low`` (excluded when ``low_open``) up to ``high`` (None: no top).

    Declared once per field (:func:`setting_field`); validation, the UI's sliders and number boxes and the CLI's help
    all read it (:func:`app.domain.setting_range`), so no two of them can disagree. ``note`` names what ``low`` means
    ("greedy"), ``hint`` what else is accepted."""

    low: float
    high: float | None = None
    low_open: bool = False
    note: str = ""
    hint: str = ""

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)

    def words(self) -> str:
        """ "between 0 (greedy) and 5", "in (0, 1]", ">= 1"."""
        low = _number(self.low) + (f" ({self.note})" if self.note else "")
        if self.high is None:
            return f"> {low}" if self.low_open else f">= {low}"
        high = _number(self.high)
        return f"in ({low}, {high}]" if self.low_open else f"between {low} and {high}"

    def refusal(self, name: str, value: object) -> str:
        """The sentence for a value outside: "temperature=7 must be between 0 (greedy) and 5"."""
        return f"{name}={value} must be {self.words()}" + (f" {self.hint}" if self.hint else "")


def setting_field(default: Any, help: str, kind: type | None = None, **meta: Any) -> Any:
    """A :class:`GenerationSettings` field and what its inputs need (the CLI builds its flags from these): ``help``;
    ``kind``, the type a raw value is read as (the default's type unless given); ``choices``; ``off``, the help of a
    boolean's negative flag; ``budget`` for the thinking budget (sweeps take theirs from a budget list); ``range``,
    the :class:`Range` of a number."""
    meta = {
        "help": help, "kind": kind or type(default), "choices": None, "off": None, "budget": False, "range": None,
        **meta,
    }  # fmt: skip
    return field(default=default, metadata=meta)
