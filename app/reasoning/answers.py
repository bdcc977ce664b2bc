"""Finding the final answer in a completion, and deciding whether two answers are the same.

Owns: the extraction priority order (``\\boxed{}`` first, the last number last), the clean-up of
currency, units and thousands separators, the grouping key, and the one place that calls
math-verify.
Does not know: models, prompts, generation or storage; every function here takes strings.

Thread safety: math-verify enforces its timeouts with ``signal.alarm``, which only works in the
main thread, and Gradio runs handlers in worker threads. So every call here passes
``parsing_timeout=None`` / ``timeout_seconds=None`` and instead refuses (falls back to string
comparison for) the inputs that can make sympy run away: long strings and towers of powers.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache

from math_verify import parse, verify


class _DropTimeoutDisabledNotice(logging.Filter):
    """math-verify warns once per process that its timeouts are off; here that is deliberate (see above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledNotice())

# --- patterns -------------------------------------------------------------------------------

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
# A number inside running text: not glued to a word on its left; "-" is a sign only after a non-word.
_NUMBER_IN_TEXT = re.compile(rf"(?<![\w.])-?(?:\\?\$\s*)?(?:{_NUM})")
_FRACTION_IN_TEXT = re.compile(r"(?<![\w.])-?(?:\\[dt]?frac\{\d+\}\{\d+\}|\d+\s*/\s*\d+)(?![\d.])")
# An answer that is a number with currency, percent/degree signs and unit words around it.
_NUMBER_WITH_UNITS = re.compile(
    r"(?P<sign1>-)?\s*(?:\\\$|\$|€|£|¥|US\$|USD|Rs\.?)?\s*(?P<sign2>-)?\s*"
    rf"(?P<num>\d+\s*/\s*\d+|{_NUM})"
    r"\s*(?:%|\\%|°|\^\\circ|\^\{\\circ\})?"
    r"(?:\s*\\text\{[^{}\d]*\}|\s*\\mbox\{[^{}\d]*\}|\s+[A-Za-z][A-Za-z'’/\-]+\.?)*"
    r"\s*[.,;!]?"
)
_FRAC_LATEX = re.compile(r"(-)?\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}")
_FRAC_SLASH = re.compile(r"(-?\d+)\s*/\s*(-?\d+)")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")
_ASSIGNMENT = re.compile(r"[A-Za-z]\s*=\s*(.+)", re.DOTALL)
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"))
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\{([^{}]*)\}")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_BOXED = re.compile(r"\\(?:boxed|fbox)\b")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_FINAL_ANSWER = re.compile(
    r"\bfinal\s+answer\s*(?:\*\*|__)?\s*(?:(?:is|would\s+be|will\s+be)\b\s*:?|[:=：])[ \t]*(?:\*\*|__)?[ \t]*(.*)"
    r"|\bfinal\s+answer\s*(?:\*\*|__)?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_HASHES = re.compile(r"(?:^|\s)####[ \t]*((?:\\?\$|-)?[ \t]*\d[^\n]*)", re.MULTILINE)
_A_LINE = re.compile(r"(?:^|\s)A:[ \t]*(\S[^\n]*?)[ \t]*$", re.MULTILINE)
_ANSWER_IS = re.compile(r"\banswer\s+is\s*:?[ \t]*([^\n]+)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]{2,}")
_LONG_WORD = re.compile(r"[A-Za-z]{3,}")
_EDGE_PUNCT = " \t\n.,;:!?\"'`*_"
# Powers of powers, big exponents and big factorials make sympy compute for minutes.
_RISKY = re.compile(r"\^\s*\{?[^{}]*?(?:\^|\d{3,})|\d{3,}\s*!|[)}]\s*!|\*\*")
_MAX_MATH_CHARS = 200


# --- extraction -----------------------------------------------------------------------------


def extract_answer(text: str | None) -> str | None:
    """The final answer stated in ``text``, cleaned, or None when there is none.

    Priority: the last ``\\boxed{}``; the last ``<answer>...</answer>``; "Final Answer:" / "final
    answer is"; GSM8K's ``#### 42``; a line ending ``A: 42``; "The answer is ..."; and, as a last
    resort, the last number in the text. Numbers lose currency, units, thousands separators and a
    trailing period: ``"$1,234.50"`` -> ``"1234.50"``, ``"18 dollars"`` -> ``"18"``.
    """
    if not text or not text.strip():
        return None
    text = text.replace("\u2212", "-")
    for finder in (_from_boxed, _from_answer_tag, _from_final_answer, _from_hashes, _from_a_line, _from_answer_is):
        found = finder(text)
        if found:
            return found
    return _last_number(text)


def extract_sample_answer(thinking: str, answer: str) -> str | None:
    """The answer part's answer, else one stated only in the thinking (e.g. the answer was cut off)."""
    return extract_answer(answer) or extract_answer(thinking)


def _from_boxed(text: str) -> str | None:
    for match in reversed(list(_BOXED.finditer(text))):
        content = _braced(text, match.end())
        if content is not None and (cleaned := clean_answer(content)):
            return cleaned
    return None


def _braced(text: str, pos: int) -> str | None:
    """The content of ``{...}`` starting at ``pos`` (nested braces allowed), or the next token."""
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos >= len(text):
        return None
    if text[pos] != "{":
        token = re.match(r"[^\s$]+", text[pos:])
        return token.group() if token else None
    depth = 0
    for i in range(pos, len(text)):
        if text[i] == "{" and text[i - 1] != "\\":
            depth += 1
        elif text[i] == "}" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[pos + 1 : i]
    return None  # unbalanced: the box was cut off


def _from_answer_tag(text: str) -> str | None:
    matches = _ANSWER_TAG.findall(text)
    if not matches:
        return None
    content = matches[-1]
    cleaned = clean_answer(content)
    if cleaned and "\n" not in cleaned and not _is_wordy(cleaned):
        return cleaned
    return extract_answer(content) or cleaned


def _from_final_answer(text: str) -> str | None:
    matches = list(_FINAL_ANSWER.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    content = last.group(1) or ""
    if not content.strip():  # "**Final Answer**" on its own line: the answer is on the next one
        rest = text[last.end() :].strip()
        content = rest.split("\n", 1)[0] if rest else ""
    return _phrase(content)


def _from_hashes(text: str) -> str | None:
    matches = _HASHES.findall(text)
    return _phrase(matches[-1]) if matches else None


def _from_a_line(text: str) -> str | None:
    matches = _A_LINE.findall(text)
    return _phrase(matches[-1]) if matches else None


def _from_answer_is(text: str) -> str | None:
    matches = _ANSWER_IS.findall(text)
    return _phrase(matches[-1]) if matches else None


def _phrase(content: str) -> str | None:
    """Clean the words after a cue like "the answer is": first sentence, then its number if wordy."""
    if _BOXED.search(content):
        boxed = _from_boxed(content)
        if boxed:
            return boxed
    content = _first_sentence(content)
    if "=" in content:  # "16 x $2 = $32": the result is what follows the last "="
        content = content.rsplit("=", 1)[1]
    cleaned = clean_answer(content)
    if cleaned and _is_wordy(cleaned):
        first = _NUMBER_IN_TEXT.search(cleaned)
        if first:
            return clean_answer(first.group())
    return cleaned


def _first_sentence(text: str) -> str:
    text = text.strip()
    end = _SENTENCE_END.search(text)
    return text[: end.start()] if end else text


def _is_wordy(cleaned: str) -> bool:
    """Has a number and prose around it, e.g. "probably 18" (but not ``3\\sqrt{2}`` or ``x = 5``)."""
    bare = _LATEX_CMD.sub(" ", _TEXT_CMD.sub(r" \1 ", cleaned))
    return any(c.isdigit() for c in cleaned) and _WORD.search(bare) is not None


def _last_number(text: str) -> str | None:
    matches = _NUMBER_IN_TEXT.findall(text)
    return clean_answer(matches[-1]) if matches else None


def clean_answer(raw: str) -> str | None:
    """Tidy one extracted answer: strip math delimiters, ``\\text{}``, trailing punctuation; a number
    with currency or units becomes the bare number without thousands separators. None if empty."""
    s = raw.strip().replace("\u2212", "-")
    changed = True
    while changed and s:
        changed = False
        for opening, closing in _WRAPPERS:
            if len(s) > len(opening) + len(closing) and s.startswith(opening) and s.endswith(closing):
                s, changed = s[len(opening) : -len(closing)].strip(), True
        whole_text = _TEXT_CMD.fullmatch(s)
        if whole_text:
            s, changed = whole_text.group(1).strip(), True
        if s.endswith((".", ",", ";", "!")) and not s.endswith("..."):
            s, changed = s[:-1].rstrip(), True
    number = _NUMBER_WITH_UNITS.fullmatch(s)
    if number:
        sign = "-" if (number.group("sign1") or number.group("sign2")) else ""
        s = sign + re.sub(r"[,\s]", "", number.group("num"))
    return s or None


# --- comparison -----------------------------------------------------------------------------


def numeric_value(answer: str) -> Fraction | None:
    """The exact value of a plain number, decimal or simple fraction (``\\frac{1}{2}``, ``1/2``), else None."""
    s = (clean_answer(answer) or "").replace(" ", "")
    try:
        if _PLAIN_NUMBER.fullmatch(s):
            return Fraction(s)
        frac = _FRAC_LATEX.fullmatch(s)
        if frac:
            value = Fraction(int(frac.group(2)), int(frac.group(3)))
            return -value if frac.group(1) else value
        frac = _FRAC_SLASH.fullmatch(s)
        if frac:
            return Fraction(int(frac.group(1)), int(frac.group(2)))
    except ZeroDivisionError:
        return None
    return None


@lru_cache(maxsize=65536)
def answer_key(answer: str) -> str:
    """A canonical key for grouping: equal numbers share one (``"18.0"``, ``"18"``, ``"$18"`` -> ``"18"``;
    ``"0.5"``, ``"1/2"``, ``"\\frac{1}{2}"`` -> ``"1/2"``); anything else is case-, space- and
    punctuation-normalised text. Equal keys imply ``answers_equal``; the converse needs math-verify."""
    s = clean_answer(answer) or ""
    assignment = _ASSIGNMENT.fullmatch(s)
    if assignment:  # "x = 5" -> "5"
        s = assignment.group(1).strip()
    value = numeric_value(s)
    if value is not None:
        return str(value)  # Fraction prints "18" or "1/2"
    return _normalise_text(s)


def _normalise_text(s: str) -> str:
    s = _TEXT_CMD.sub(r"\1", s).replace("$", "")
    s = re.sub(r"\\[,;! ]|\\left|\\right", " ", s).lower()
    if not any(c.isdigit() for c in s) and "\\" not in s:
        s = re.sub(r"[^\w\s]", " ", s)  # prose: punctuation does not matter
    s = re.sub(r"\s+", " ", s).strip(_EDGE_PUNCT)
    return re.sub(r"\s*([^\w\s])\s*", r"\1", s)


def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether two answers are the same: equal keys, else math-verify (``1/2`` == ``0.5`` ==
    ``\\frac{1}{2}``, ``2\\sqrt{2}`` == ``\\sqrt{8}``). None or an empty answer equals nothing."""
    if a is None or b is None:
        return False
    key_a, key_b = answer_key(a), answer_key(b)
    if not key_a or not key_b:
        return False
    if key_a == key_b:
        return True
    if _is_integer_key(key_a) and _is_integer_key(key_b):
        return False  # two different integers: no need to ask sympy
    clean_a, clean_b = clean_answer(a) or "", clean_answer(b) or ""
    if not (_looks_math(clean_a) and _looks_math(clean_b)):
        return False
    first, second = sorted((clean_a, clean_b))
    return _math_equal(first, second)


def _is_integer_key(key: str) -> bool:
    return re.fullmatch(r"-?\d+", key) is not None


def _looks_math(s: str) -> bool:
    """Short, no runaway exponent, and no English word (math-verify reads "Monday" as M*o*n*d*a*y)."""
    if not s or len(s) > _MAX_MATH_CHARS or _RISKY.search(s):
        return False
    return _LONG_WORD.search(_LATEX_CMD.sub(" ", s)) is None


@lru_cache(maxsize=65536)
def _math_equal(a: str, b: str) -> bool:
    parsed_a, parsed_b = _parse(a), _parse(b)
    if not parsed_a or not parsed_b:
        return False
    # verify() is asymmetric only for "x = 5" style assignments; an answer may be on either side.
    return bool(
        verify(list(parsed_a), list(parsed_b), timeout_seconds=None)
        or verify(list(parsed_b), list(parsed_a), timeout_seconds=None)
    )


@lru_cache(maxsize=65536)
def _parse(answer: str) -> tuple[object, ...]:
    # Wrapped in $...$ so the whole answer is read as one LaTeX expression ("1, 2, 3" is a set,
    # not its last number); the bare string is the fallback for what LaTeX parsing rejects.
    parsed = parse(f"${answer}$", parsing_timeout=None) or parse(answer, parsing_timeout=None)
    return tuple(parsed)
