"""One range per numeric setting, declared once next to its field in ``app.domain`` (issue 23, item 5).

Validation, every slider and number box of the running app and the CLI's help read the same ``Range``: the
temperature slider went to 2.0 (1.5 in the analysis tabs) while the engine and the CLI took up to 5.
"""

from __future__ import annotations

from dataclasses import fields

import pytest

from app.cli import build_parser
from app.domain import GenerationSettings, setting_range
from app.errors import InvalidInput

#: The app's controls of each setting, by label (the Playground's, then the analysis tabs').
CONTROLS = {
    "temperature": ("Temperature", "Temperature (0 = greedy)"),
    "top_p": ("top_p",),
    "max_thinking_tokens": ("Max thinking tokens",),
    "min_thinking_tokens": ("Min thinking tokens",),
}
RANGED = [f.name for f in fields(GenerationSettings) if f.metadata.get("range") is not None]


def test_every_numeric_setting_declares_its_range_and_validation_reads_it():
    assert {"temperature", "top_p", "samples", "seed", "max_answer_tokens", "max_continuations"} <= set(RANGED)
    for name in RANGED:
        allowed = setting_range(name)
        if allowed.high is not None:
            GenerationSettings(**{name: allowed.high})  # the top is allowed ...
            with pytest.raises(
                InvalidInput, match=f"{name}=.* must be {allowed.words().replace('(', '.').replace(')', '.')}"
            ):
                GenerationSettings(**{name: allowed.high + 1})  # ... and one above it is refused, in its words
    assert setting_range("temperature").high == 5


def test_the_apps_sliders_and_boxes_use_the_declared_ranges(client):
    components = client.config["components"]
    for name, labels in CONTROLS.items():
        allowed = setting_range(name)
        found = [c["props"] for c in components if c.get("props", {}).get("label") in labels]
        assert found, f"no control for {name}"
        for props in found:
            assert props.get("maximum") == allowed.high, (
                f"{props['label']} stops at {props.get('maximum')}"
            )  # was 2.0 / 1.5
            low = props.get("minimum")
            assert low == allowed.low or (allowed.low_open and low > allowed.low), props["label"]


def test_the_cli_takes_and_explains_the_same_range(capsys):
    parser = build_parser()
    args = parser.parse_args(["generate", "q", "--temperature", "5"])
    assert args.temperature == 5
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--help"])
    assert f"[{setting_range('temperature').words()}]" in " ".join(capsys.readouterr().out.split())
