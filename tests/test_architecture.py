"""The layer picture in the README holds: imports go downward only, tabs stay apart, modules stay small.

ui / cli -> services -> engine / reasoning / store -> export, with ``app.domain``, ``app.errors``,
``app.settings`` and ``app.resources`` shared by every layer. Reads every module's imports (lazy ones inside
functions too) with ``ast``, so a new module that breaks a rule fails here, naming the module and the import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app.ui.app import TABS

APP = Path(__file__).resolve().parent.parent / "app"
MAX_LINES = 450

#: What each layer must never import (a prefix matches the package and everything in it).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "app.engine": ("app.store", "app.services", "app.ui", "app.cli", "app.export", "gradio", "sqlalchemy"),
    "app.store": ("app.engine", "app.services", "app.ui", "app.cli", "torch", "transformers", "gradio"),
    "app.reasoning": ("app.engine", "app.store", "app.services", "app.ui", "app.cli", "app.export", "torch", "gradio"),
    "app.export": ("app.engine", "app.store", "app.services", "app.ui", "app.cli", "torch", "gradio", "sqlalchemy"),
    "app.services": ("app.ui", "app.cli", "gradio"),
    "app.ui": ("app.store", "app.cli", "sqlalchemy"),
    "app.cli": ("app.store", "sqlalchemy"),
    "app.domain": ("app.",),
}

#: Modules that belong to one tab without being its ``build_tab`` module (tab module name -> its parts).
TAB_PARTS: dict[str, set[str]] = {
    "app.ui.playground": {"app.ui.playground_run"},
    "app.ui.annotate": {"app.ui.annotate_api", "app.ui.annotate_view", "app.ui.agreement", "app.ui.annotate_branch"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from app import x`` -> ``app.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in sorted(APP.rglob("*.py")) if "migrations" not in p.parts}


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix if prefix.endswith(".") else prefix + ".")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_downward_only(layer):
    bad = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if _matches(name, layer)
        for imported in sorted(imports_of(path))
        for prefix in FORBIDDEN[layer]
        if _matches(imported, prefix)
    ]
    assert not bad, f"{layer} must not import {', '.join(FORBIDDEN[layer])}:\n" + "\n".join(bad)


def test_no_tab_imports_another_tab_and_shared_ui_modules_import_no_tab():
    tabs = {name for _, name in TABS}
    owner = {name: name for name in tabs} | {part: tab for tab, parts in TAB_PARTS.items() for part in parts}
    bad = []
    for name, path in MODULES.items():
        if not name.startswith("app.ui."):
            continue
        for imported in imports_of(path):
            target = owner.get(imported)
            if target is not None and target != owner.get(name):
                bad.append(f"{name} imports {imported} (part of the {target} tab)")
    assert not bad, "tabs share code through app.ui.render / app.ui.running / app.ui.inputs only:\n" + "\n".join(bad)


def test_no_module_is_over_the_size_limit():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines each): {long}"


def test_no_store_or_engine_handle_is_typed_any():
    pattern = re.compile(r"\b(store|engine|rt)\s*:\s*Any\b")
    bad = [f"{name}: {m.group()}" for name, path in MODULES.items() for m in pattern.finditer(path.read_text())]
    assert not bad, "type the handle (the class or a Protocol), never Any:\n" + "\n".join(bad)


def test_the_rules_see_a_real_violation(tmp_path):
    """The checker itself works: a module importing the store and a sibling tab is caught."""
    fake = tmp_path / "bad.py"
    fake.write_text("from app.store import Store\n\ndef f():\n    from app.ui import compare\n")
    assert {"app.store", "app.store.Store", "app.ui", "app.ui.compare"} <= imports_of(fake)
