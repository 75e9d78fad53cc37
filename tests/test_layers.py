"""Facts are data, rules read them, and the manifest package offers the cross-manifest output check."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import vidbatch
from vidbatch import facts, rules
from vidbatch.manifest import check_output_collisions, load_manifest

from .manifest_helpers import write

PACKAGE = Path(vidbatch.__file__).parent


def _vidbatch_imports(module_file: Path) -> set[str]:
    """Every vidbatch module ``module_file`` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(module_file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("vidbatch")):
            found.add("." * node.level + (node.module or "") + ":" + ",".join(a.name for a in node.names))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vidbatch"))
    return found


def test_facts_imports_nothing_from_vidbatch():
    assert _vidbatch_imports(PACKAGE / "facts.py") == set()


def test_rules_read_the_facts():
    # a model and mode the table knows, with a duration it does not: the rule reads the table
    assert [p.field for p in rules.check_request({"model": "T2V-01", "prompt": "p", "duration": 10})] == ["duration"]
    assert rules.mode_of({"first_frame_image": "x"}) is facts.Mode.I2V
    assert rules.normalized_request({"model": "T2V-01", "prompt": "p"})["resolution"] == "720P"
    assert facts.models_for(facts.Mode.FL2V) == ["MiniMax-Hailuo-02", "MiniMax-H3"]
    assert facts.models_for(facts.Mode.LF2V) == facts.models_for(facts.Mode.R2V) == ["MiniMax-H3"]


def _manifest(folder: Path, name: str, job: str, output: str) -> Path:
    return write(
        folder, name,
        f'output_dir = "out"\n[[jobs]]\nname = "{job}"\nmodel = "T2V-01"\nprompt = "p"\noutput = "{output}"\n',
    )


def test_check_output_collisions_names_the_later_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = load_manifest(_manifest(tmp_path, "a.toml", "fox", "fox.mp4"))
    b = load_manifest(_manifest(tmp_path, "b.toml", "other", "fox.mp4"))
    c = load_manifest(_manifest(tmp_path, "c.toml", "wolf", "wolf.mp4"))
    assert check_output_collisions([a, c]) == []
    [problem] = check_output_collisions([a, b, c])
    assert (problem.file, problem.job, problem.field, problem.line) == ("b.toml", "other", "output", 2)
    assert problem.message == (
        f"output {os.path.join('out', 'fox.mp4')} is also written by job fox of a.toml; "
        "give one of them another name or output"
    )
    [problem] = check_output_collisions([b, a])
    assert problem.job == "fox" and problem.file == "a.toml"


def test_check_output_collisions_follows_symbolic_links(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one" / "out").mkdir(parents=True)
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "out").symlink_to(tmp_path / "one" / "out")
    a = load_manifest(_manifest(tmp_path / "one", "a.toml", "fox", "fox.mp4"))
    b = load_manifest(_manifest(tmp_path / "two", "b.toml", "fox", "fox.mp4"))
    [problem] = check_output_collisions([a, b])
    assert problem.file == os.path.join("two", "b.toml") and "is also written by job fox of" in problem.message
