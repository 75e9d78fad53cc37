"""The plain-text output of ``plan`` and ``status`` (what people read), after a real ``run --sim``:
jobs, actions, reasons, counts and paths, line by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import cli

FAST = ["--poll-interval", "0", "--rpm", "60000", "--sim-latency", "0"]
MANIFEST = """\
output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "fox"
prompt = "A red fox trots through fresh snow"

[[jobs]]
name = "owl"
prompt = "An owl blinks slowly [Push in]"

[[jobs]]
name = "broken"
prompt = "A lighthouse in a storm sim-fail"
"""


def rows(output: str) -> dict[str, list[str]]:
    """Indented table rows by job name: ``  <first> <name> <rest>`` -> {name: [first, rest]}."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        parts = line.split(None, 2)
        if line.startswith("  ") and len(parts) >= 2 and parts[1] in ("fox", "owl", "broken", "later"):
            found[parts[1]] = [parts[0], parts[2] if len(parts) > 2 else ""]
    return found


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # paths are shown relative to the current folder
    path = tmp_path / "shots.toml"
    path.write_text(MANIFEST)
    return path


@pytest.fixture
def edited(project) -> Path:
    """Rendered by the simulator (broken fails), then: owl's prompt edited, fox's video deleted,
    a job added."""
    assert cli(["run", "--sim", project, *FAST]).exit_code == 1
    project.write_text(project.read_text().replace("blinks slowly", "blinks twice") + '\n[[jobs]]\nname = "later"\nprompt = "Added later"\n')
    (project.parent / "renders-sim" / "fox.mp4").unlink()
    return project


def test_plan_before_anything_ran(project):
    result = cli(["plan", "--sim", project])
    assert result.exit_code == 0, result.output
    assert rows(result.output) == {name: ["submit", "never rendered"] for name in ("fox", "owl", "broken")}
    lines = result.output.splitlines()
    assert "Plan: 3 submit" in lines and "3 billable renders:" in lines
    assert any(line.split()[:6] == ["3", "x", "MiniMax-Hailuo-02", "t2v", "768P", "6s"] for line in lines)


def test_status_before_anything_ran(project):
    result = cli(["status", "--sim", project])
    assert result.exit_code == 0
    assert result.output.strip() == f"no state at {project.parent / '.vidbatch' / 'sim'}: nothing has been run here yet"


def test_plan_after_a_run_and_some_edits(edited):
    result = cli(["plan", "--sim", edited])
    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert {name: action for name, (action, _) in table.items()} == {"fox": "download", "owl": "resubmit", "broken": "failed", "later": "submit"}
    assert table["fox"][1] == "output file is missing: download again, no new render"
    assert table["owl"][1] == "prompt changed since owl was rendered"
    assert 'prompt: "An owl blinks slowly [Push in]" -> "An owl blinks twice [Push in]"' in result.output
    assert table["broken"][1].startswith("failed: task ") and "simulated render failure" in table["broken"][1]
    assert "(retry with --retry-failed)" in result.output
    lines = result.output.splitlines()
    assert "Plan: 1 submit, 1 resubmit, 1 download, 1 failed" in lines and "2 billable renders:" in lines


def test_status_after_a_run_and_some_edits(edited):
    result = cli(["status", "--sim", edited])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"state: {Path('.vidbatch') / 'sim'}"
    assert lines[1].strip() == "1 failed, 2 new, 1 done"
    table = rows(result.output)
    assert {name: state for name, (state, _) in table.items()} == {"broken": "failed", "owl": "new", "later": "new", "fox": "done"}
    assert "simulated render failure" in table["broken"][1] and "trace_id=" in table["broken"][1]
    assert "  hint: the render failed on MiniMax's side" in result.output
    assert table["fox"][1] == f"{Path('renders-sim') / 'fox.mp4'}  (file missing: run downloads it again)"
    # listed in the order of attention: failed first, done last
    assert [line.split()[1] for line in lines[2:] if line.startswith("  ") and not line.startswith("  hint")] == ["broken", "owl", "later", "fox"]


def test_status_without_a_manifest_lists_what_the_state_holds(edited):
    result = cli(["status", "--sim"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].strip() == "1 failed, 2 done"
    table = rows(result.output)
    assert {name: state for name, (state, _) in table.items()} == {"broken": "failed", "fox": "done", "owl": "done"}
    assert table["owl"][1] == str(Path("renders-sim") / "owl.mp4")


def test_status_of_one_job_tells_its_story(edited):
    result = cli(["status", "--sim", "--job", "broken", edited])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("broken: failed  key vb1:")
    events = [line.split()[2] for line in lines[1:]]
    assert events == ["seen", "submit", "submitted", "status", "failed"]
    assert "running -> failed" in lines[-1] and "call=query" in lines[-1] and "simulated render failure" in lines[-1]
