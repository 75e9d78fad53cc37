"""The README's table of models is generated from the facts table and must agree with it."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

from vidbatch import facts

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("readme_models", ROOT / "scripts" / "readme_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


def test_readme_model_table_agrees_with_facts():
    current = gen.readme_section((ROOT / "README.md").read_text(encoding="utf-8"))
    assert current is not None, "README.md lost its model section markers"
    assert current == gen.section(), "README model table is stale: run python scripts/readme_models.py --write"


def test_every_model_mode_duration_and_resolution_is_in_the_table():
    table = gen.section()
    for model in facts.MODELS.values():
        assert f"| `{model.name}` |" in table
        for mode, spec in model.modes.items():
            assert f"{mode.label} (`{mode.value}`)" in table
            for seconds, resolutions in spec.durations.items():
                shown = ", ".join(resolutions)
                runs = [(int(a), int(b)) for a, b in re.findall(rf"(\d+) to (\d+) s: {re.escape(shown)}(?:;| \|)", table)]
                assert f"{seconds} s: {shown}" in table or any(a <= seconds <= b for a, b in runs), (model.name, seconds)
    for command in facts.CAMERA_COMMANDS:
        assert f"`{command}`" in table or f"({command})" in table


def test_check_fails_when_facts_change(monkeypatch, capsys):
    """A model added to the facts (or one whose durations change) makes --check fail."""
    assert gen.main(["--check"]) == 0
    base = facts.MODELS["T2V-01"]
    longer = dataclasses.replace(base.modes[facts.Mode.T2V], durations={6: ("720P",), 10: ("720P",)})
    monkeypatch.setitem(facts.MODELS, "T2V-01", dataclasses.replace(base, modes={facts.Mode.T2V: longer}))
    assert gen.main(["--check"]) == 1
    assert "disagrees with vidbatch/facts.py" in capsys.readouterr().out


def test_docs_link_to_the_table():
    assert "README.md#models" in (ROOT / "docs" / "manifest.md").read_text(encoding="utf-8")
    assert "\n## Models\n" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_a_run_of_seconds_is_one_range_and_v2_models_are_explained():
    table = gen.section()
    assert "| `MiniMax-H3` |" in table and "4 to 15 s: 2K, 768P" in table and "4 s: 2K" not in table
    assert "`MiniMax-H3` is served by Video Generation V2" in table
    spec = facts.ModeSpec(durations={4: ("2K",), 5: ("2K",), 6: ("768P",), 8: ("768P",)}, default_resolution="2K")
    assert gen._durations(spec) == "4 to 5 s: 2K; 6 s: 768P; 8 s: 768P"
