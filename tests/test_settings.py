"""Settings: one table, env vars and flags agree, and the README documents every row (as datasette does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import build_parser
from app.settings import AppSettings, describe_settings

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("row", describe_settings(), ids=lambda r: r[0])
def test_every_setting_is_documented_in_the_readme(row):
    flag, env, _default, _help = row
    text = README.read_text()
    assert flag in text and env in text, f"README.md must document {flag} / {env}"


def test_every_cli_subcommand_and_flag_is_documented():
    text = README.read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command, subparser in sub.choices.items():
        assert f"python -m app {command}" in text
        for action in subparser._actions:
            flags = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
            if flags and action.dest != "help":
                assert any(f in text for f in flags), f"README.md must document {command} {flags[0]}"


def test_env_then_flags_override_defaults():
    env = {"TRACELAB_PORT": "9000", "TRACELAB_MODEL": "tiny"}
    assert AppSettings.from_env(env).port == 9000
    assert AppSettings.from_env(env, port=9100).port == 9100
    assert AppSettings.from_env(env).model == "tiny"
    assert AppSettings.from_env({}).host == "127.0.0.1"  # loopback unless told otherwise


def test_bad_values_name_the_setting():
    with pytest.raises(ValueError, match="quantize='2bit'"):
        AppSettings.from_env({}, quantize="2bit")
    with pytest.raises(ValueError, match="must look like user:password"):
        AppSettings.from_env({}, auth="alice").auth_pairs()


def test_auth_file_and_inline(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# annotators\nalice:pw1\nbob:pw2\n")
    assert AppSettings.from_env({}, auth=str(users)).auth_pairs() == [("alice", "pw1"), ("bob", "pw2")]
    assert AppSettings.from_env({}, auth="a:1,b:2").auth_pairs() == [("a", "1"), ("b", "2")]


def test_serve_flags_come_from_the_table():
    args = build_parser().parse_args(["serve", "--port", "7000", "--model", "tiny"])
    assert args.app_port == 7000 and args.app_model == "tiny"


def test_a_bad_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="TRACELAB_PORT='abc' is not a whole number"):
        AppSettings.from_env({"TRACELAB_PORT": "abc"})
