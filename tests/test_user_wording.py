"""Refusals in the user's words (issue 23 item 8): no Python keyword, ``None``, exception class or type name in
a message an app module raises, and the export refusal names the CLI flag (``--overwrite``), not
``overwrite=True``. The scan reads every ``raise`` in app/ (its message's literal text and any ``__name__``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from app.cli import main

APP = Path(__file__).resolve().parent.parent / "app"
#: Python spelled out to a user: ``overwrite=True``, ``or None``, ``OverflowError``, ``type(x).__name__``.
PYTHON_WORDS = re.compile(r"=(True|False|None)\b|\bNone\b|\b[A-Z]\w*(Error|Exception)\b")


def python_in_refusals(root: Path) -> list[str]:
    """``path:line: text`` for each raised message under ``root`` that spells out Python."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            for part in ast.walk(node.exc):
                literal = (
                    isinstance(part, ast.Constant) and isinstance(part.value, str) and PYTHON_WORDS.search(part.value)
                )
                if literal or (isinstance(part, ast.Attribute) and part.attr == "__name__"):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {ast.unparse(node.exc)[:120]}")
    return found


def test_no_refusal_spells_out_python():
    bad = python_in_refusals(APP)
    assert not bad, "say it in the user's words (a flag, a JSON type, 'unset'):\n" + "\n".join(bad)


def test_the_scan_sees_python_in_a_message(tmp_path):
    (tmp_path / "m.py").write_text(
        "def f(x):\n"
        "    raise ValueError(f'{x} exists; pass overwrite=True')\n"
        "def g(x):\n"
        "    raise ValueError(f'{x} is a {type(x).__name__}')\n"
        "def h(x):\n"
        "    raise ValueError('fine: choose another path')\n"
    )
    assert [line.split(":")[1] for line in python_in_refusals(tmp_path)] == ["2", "4"]


def test_the_export_refusal_names_the_flag(tmp_path, capsys):
    out = tmp_path / "exists.jsonl"
    out.write_text("keep me\n")
    code = main(["export", "--format", "sft", "--out", str(out), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and f"{out} already exists; add --overwrite to replace it, or choose another path" in err
    assert "=True" not in err and out.read_text() == "keep me\n"  # was: "pass overwrite=True (--overwrite)"
