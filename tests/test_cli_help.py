"""``vidbatch COMMAND --help`` is complete: examples for every command, help for every option,
and ``--sim`` on every command that reads or writes renders (issue 10 §1 and §5)."""

from __future__ import annotations

import click
import pytest

from vidbatch.cli import COMMANDS, main

from .helpers import cli

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
