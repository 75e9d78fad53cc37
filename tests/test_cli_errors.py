"""One error boundary: under ``--json`` every command that has it (validate and render too) prints
a usage error or an invalid manifest as one JSON object on stdout, with the usual exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import cli

BAD = '[[jobs]]\nname = "a"\nmodel = "No-Such-Model"\nprompt = "x"\n'


@pytest.mark.parametrize("command", ["validate", "render", "plan", "run", "status"])
def test_a_bad_option_under_json_is_one_json_object(tmp_path: Path, command: str) -> None:
    manifest = tmp_path / "m.toml"
    manifest.write_text('[[jobs]]\nname = "a"\nmodel = "MiniMax-Hailuo-02"\nprompt = "x"\n')
    result = cli([command, "--json", "--no-such-option", manifest])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and "no-such-option" in doc["error"]


def test_render_json_of_an_invalid_manifest_is_one_json_error_with_problems(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.toml"
    manifest.write_text(BAD)
    result = cli(["render", "--json", manifest])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and doc["problems"] and "No-Such-Model" in json.dumps(doc["problems"])
    plain = cli(["render", manifest])
    assert plain.exit_code == 2 and plain.stdout == "" and "No-Such-Model" in plain.stderr
