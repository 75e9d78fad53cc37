"""``vidbatch COMMAND --help`` is complete: examples for every command, help for every option,
and ``--sim`` on every command that reads or writes renders (issue 10 §1 and §5)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from vidbatch.cli import COMMANDS, main

from .helpers import cli, t2v_manifest

ROOT = Path(__file__).resolve().parent.parent

READS_RENDERS = ("plan", "run", "status", "gc", "watch", "report")


def _command(name: str) -> click.Command:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    return command


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_has_examples_and_every_option_is_explained(name: str) -> None:
    result = cli([name, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and f"vidbatch {name}" in result.output.split("Examples:")[1]
    unexplained = [p.name for p in _command(name).params if isinstance(p, click.Option) and not p.help]
    assert unexplained == []


@pytest.mark.parametrize("name", READS_RENDERS)
def test_every_command_that_reads_renders_takes_sim(name: str) -> None:
    options = {opt for p in _command(name).params for opt in getattr(p, "opts", [])}
    assert "--sim" in options
    assert "--sim" in cli([name, "--help"]).output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_option_read_from_the_environment_says_which_variable(name: str) -> None:
    """status and spend read --state from VIDBATCH_STATE, as run does, but their help did not
    say so: a folder set in the environment came from nowhere the help named."""
    silent = [
        p.name
        for p in _command(name).params
        if isinstance(p, click.Option) and isinstance(p.envvar, str) and p.envvar not in (p.help or "")
    ]
    assert silent == []


def _exit_codes(text: str) -> dict[str, str]:
    """The "Exit codes: 0 ...; 1 ...; ..." paragraph of a help as {code: what it means}."""
    paragraph = next(p for p in text.split("\n\n") if "Exit code" in p)
    clauses = " ".join(paragraph.split()).split(":", 1)[1].split(";")
    return dict(c.strip().split(" ", 1) for c in clauses)


@pytest.mark.parametrize("args", [[], ["run"], ["watch"], ["cancel"]])
def test_exit_codes_say_a_key_missing_is_2_and_a_key_refused_is_3(args: list[str], tmp_path: Path) -> None:
    """A missing or malformed key exits 2 (errors.ConfigError: nothing was sent); vidbatch --help
    called 3 an "account or credentials problem"."""
    codes = _exit_codes(cli([*args, "--help"]).output)
    assert "API key missing or malformed" in codes["2"]
    assert "the API refused the account or key" in codes["3"] and "credentials" not in codes["3"]
    if args == ["run"]:
        manifest = tmp_path / "m.toml"
        manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
        assert cli(["run", manifest]).exit_code == 2  # no key: what the help says


def test_the_readme_exit_codes_say_a_key_missing_is_2_and_a_key_refused_is_3() -> None:
    rows = dict(re.findall(r"^\| (\d+) \| (.*) \|$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M))
    assert "API key missing or malformed" in rows["2"]
    assert "the API refused the account or key" in rows["3"] and "credentials" not in rows["3"]
