"""The README's gradio_client example runs as written against the real app (tiny model)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_client_example_runs(tiny_app, capsys):
    _rt, url = tiny_app
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = "\n".join(b for b in blocks if "Client(" in b or "client." in b)
    code = code.replace("http://127.0.0.1:7860/", url)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    run = namespace["run"]
    assert run["run_id"] and run["samples"][0]["thinking_tokens"] <= 60
    assert "17*23" in capsys.readouterr().out
