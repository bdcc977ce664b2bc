"""The layer picture in the README holds: imports go downward only, tabs stay apart, modules stay small.

ui / cli -> services -> engine / reasoning / store -> export, with ``app.domain``, ``app.errors``,
``app.settings`` and ``app.resources`` shared by every layer. Reads every module's imports (lazy ones inside
functions too) with ``ast``, so a new module that breaks a rule fails here, naming the module and the import.

Inside the layers: no module (in ``app/`` or ``bench/``) uses another module's underscore names; nothing
outside ``app/engine`` probes an engine with ``hasattr``, ``getattr`` or ``inspect.signature`` (the engine
contract says what it has); ``app/errors.py`` imports nothing from ``app``; the phase constants are declared
in one module; no module over 400 lines and no function over 80. Each checker is a function over source text,
shown to catch a synthetic violation below.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app.ui.app import TABS

APP = Path(__file__).resolve().parent.parent / "app"
BENCH = APP.parent / "bench"
MAX_LINES = 400
MAX_FUNCTION_LINES = 80

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
    "app.labelled_data": ("app.",),
    "app.setting_fields": ("app.",),
}
#: The one exception to FORBIDDEN: the data types may raise the shared errors (which import nothing from app).
ALLOWED: dict[str, tuple[str, ...]] = {
    "app.domain": ("app.errors", "app.setting_fields"),
    "app.labelled_data": ("app.domain",),
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
        if _matches(imported, prefix) and not any(_matches(imported, ok) for ok in ALLOWED.get(layer, ()))
    ]
    assert not bad, f"{layer} must not import {', '.join(FORBIDDEN[layer])}:\n" + "\n".join(bad)


def app_imports(path: Path) -> list[str]:
    """The ``app`` modules ``path`` imports (at the top or inside a function), sorted."""
    return sorted(name for name in imports_of(path) if _matches(name, "app"))


def test_errors_import_nothing_from_app(tmp_path):
    """``app.errors`` sits below every layer, so every layer may raise and catch its errors: it imports no ``app``."""
    assert not app_imports(MODULES["app.errors"]), (
        f"app/errors.py imports from app: {app_imports(MODULES['app.errors'])}"
    )
    fake = tmp_path / "errors.py"  # the rule sees a real violation, even a lazy one inside a function
    fake.write_text("def user_error_types():\n    from app.engine.loading import LoadError\n")
    assert app_imports(fake) == ["app.engine.loading", "app.engine.loading.LoadError"]


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
    assert not bad, (
        "tabs share code through app.ui.render / app.ui.running / app.ui.control_values only:\n" + "\n".join(bad)
    )


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


# --- inside the layers ---------------------------------------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(node: ast.ImportFrom, module: str) -> str:
    """The module an ImportFrom names, relative imports resolved against ``module`` (a dotted name)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")[: -node.level]  # (app/ imports absolutely; this is for a stray relative one)
    return ".".join([*package, *([node.module] if node.module else [])])


def private_uses(source: str, module: str, app_modules: set[str]) -> list[str]:
    """Underscore names of another ``app`` module that ``source`` (the module ``module``) imports, or reads as
    ``alias._name`` off an imported ``app`` module."""
    found, aliases = [], {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            origin = _absolute(node, module)
            if origin.split(".")[0] != "app":
                continue
            for alias in node.names:
                if f"{origin}.{alias.name}" in app_modules:  # a module: remember its local name
                    aliases[alias.asname or alias.name] = f"{origin}.{alias.name}"
                elif _private(alias.name) and origin != module:
                    found.append(f"from {origin} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "app":
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"import {alias.name}")
                    if alias.asname:
                        aliases[alias.asname] = alias.name
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and _private(node.attr):
            target = aliases.get(node.value.id)
            if target is not None and target != module:
                found.append(f"{node.value.id}.{node.attr} ({target})")
    return sorted(set(found))


PROBES = {"hasattr", "getattr", "signature"}


def engine_probes(source: str) -> list[str]:
    """Calls to ``hasattr``/``getattr``/``inspect.signature`` whose first argument mentions an engine."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in PROBES and "engine" in ast.unparse(node.args[0]).lower():
            found.append((node.lineno, node.col_offset, f"line {node.lineno}: {ast.unparse(node)}"))
    return [text for *_, text in sorted(found)]


PHASES = {"THINKING", "ANSWER", "DONE"}


def _assigned_names(node: ast.stmt) -> list[str]:
    """The plain names an assignment statement binds (``A = ...``, ``A: int = ...``, ``A, B = ...``)."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return []
    flat = [n for t in targets for n in (t.elts if isinstance(t, ast.Tuple | ast.List) else [t])]
    return [n.id for n in flat if isinstance(n, ast.Name)]


def phase_definitions(source: str) -> set[str]:
    """The phase constants (THINKING, ANSWER, DONE) ``source`` assigns at module level or in a class body
    (an Enum's members)."""
    tree = ast.parse(source)
    bodies = [tree.body] + [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
    return {name for body in bodies for node in body for name in _assigned_names(node) if name in PHASES}


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """Functions (and methods, nested ones too) longer than ``limit`` lines, by qualified name."""
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef) and (n := child.end_lineno - child.lineno + 1) > limit:
                    found[name] = n
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


BENCHES = {f"bench.{p.stem}": p for p in sorted(BENCH.glob("*.py"))}


def test_no_module_uses_another_modules_underscore_names():
    bad = [
        f"{name}: {use}"
        for name, path in {**MODULES, **BENCHES}.items()
        for use in private_uses(path.read_text(encoding="utf-8"), name, set(MODULES))
    ]
    assert not bad, "make the name public, or move it to where it is used:\n" + "\n".join(bad)


def test_nothing_outside_the_engines_probes_an_engine():
    bad = [
        f"{name}: {probe}"
        for name, path in MODULES.items()
        if not _matches(name, "app.engine")
        for probe in engine_probes(path.read_text(encoding="utf-8"))
    ]
    assert not bad, "the engine contract (app/engine/interface.py) says what an engine has:\n" + "\n".join(bad)


def test_the_phase_constants_are_declared_in_one_module():
    where = {name: found for name, path in MODULES.items() if (found := phase_definitions(path.read_text()))}
    assert len(where) <= 1, f"one budget rulebook declares THINKING, ANSWER and DONE; found them in {where}"


def test_no_function_is_over_the_size_limit():
    long = {f"{name}.{fn}": n for name, path in MODULES.items() for fn, n in long_functions(path.read_text()).items()}
    assert not long, f"split these functions (at most {MAX_FUNCTION_LINES} lines each): {long}"


TEST_HELPERS = {p.stem for p in (APP.parent / "tests").glob("*.py")} | {"tests"}


def bench_problems(path: Path) -> list[str]:
    """What ``path`` (a bench script) imports from ``tests/``, and whether it changes ``sys.path``."""
    found = [f"imports {name}" for name in sorted(imports_of(path)) if name.split(".")[0] in TEST_HELPERS]
    if re.search(r"sys\.path\s*(\.insert|\.append|\[|=)", path.read_text(encoding="utf-8")):
        found.append("changes sys.path")
    return found


def test_benches_import_the_installed_package_and_nothing_from_tests():
    """``app`` is installed (``pip install -e .``), and a script's own folder is on its path already."""
    bad = [f"{name}: {problem}" for name, path in BENCHES.items() for problem in bench_problems(path)]
    assert not bad, "\n".join(bad)


def test_the_inner_rules_see_real_violations():
    """Each checker above catches a synthetic violation and passes the allowed form next to it."""
    modules = {"app.engine.generation", "app.engine.rollouts", "app.engine"}
    bad = (
        "from app.engine.generation import _TickStreamer, Engine\n"
        "from app.engine import generation\n"
        "import app.engine.rollouts as ro\n"
        "class Late(generation._TickStreamer): pass\n"
        "ro._free(1); generation.Engine; generation.__name__\n"
    )
    assert private_uses(bad, "app.engine.rollouts", modules) == [
        "from app.engine.generation import _TickStreamer",
        "generation._TickStreamer (app.engine.generation)",
    ]  # ro._free is the module's own name: allowed
    assert private_uses("from app.engine.generation import _x\n", "bench.device_check", modules)
    assert not private_uses("from app.engine.generation import Engine\nfrom os import _exit\n", "app.x", modules)

    probes = engine_probes(
        "import inspect\n"
        "if 'prefix' in inspect.signature(rt.engine.stream).parameters: pass\n"
        "hasattr(engine, 'stream_rollouts'); getattr(self.engine, 'status', None)\n"
        "getattr(settings, 'seed'); hasattr(rt, 'db')\n"
    )
    assert [p.split(":")[0] for p in probes] == ["line 2", "line 3", "line 3"]

    assert phase_definitions("THINKING, ANSWER, DONE = 'thinking', 'answer', 'done'\n") == PHASES
    assert phase_definitions("class Phase(Enum):\n    THINKING = 1\n    DONE: int = 2\n") == {"THINKING", "DONE"}
    assert not phase_definitions("def f():\n    THINKING = 1\nphase = THINKING\n")

    lines = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))  # + the def line: the limit
    assert not long_functions(f"class A:\n    def f(self):\n{lines}")
    assert long_functions(f"class A:\n    def f(self):\n{lines}        y = 0\n") == {"A.f": MAX_FUNCTION_LINES + 1}


def test_the_errors_rule_sees_a_lazy_import(tmp_path):
    fake = tmp_path / "errors.py"
    fake.write_text("class UserError(Exception): pass\n\ndef user_error_types():\n    from app.engine import bundled\n")
    assert app_imports(fake) == ["app.engine", "app.engine.bundled"]


def test_the_bench_rule_sees_a_test_import_and_a_path_change(tmp_path):
    fake = tmp_path / "old_bench.py"
    fake.write_text("import sys\nsys.path[:0] = ['tests']\nfrom server_support import transformers_serve\n")
    assert bench_problems(fake) == [
        "imports server_support",
        "imports server_support.transformers_serve",
        "changes sys.path",
    ]
