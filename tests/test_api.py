"""The Python API (issue 10 §6): ``import vidbatch`` renders a manifest against the simulator
with no CLI, reports through a callback, and stays cheap to import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vidbatch
from vidbatch import mp4

from .helpers import ROOT, t2v_manifest

HEAVY = ("requests", "jinja2", "sqlite_utils", "jsonschema", "watchdog", "av", "rich")


def test_render_a_manifest_against_the_simulator_through_the_api(tmp_path: Path) -> None:
    manifest = tmp_path / "shots.toml"
    manifest.write_text(t2v_manifest({"fox": "A fox in the snow", "owl": "An owl at night"}))
    ws = vidbatch.load([manifest])
    assert [p.action.value for p in ws.plan().jobs] == ["submit", "submit"]
    events: list[vidbatch.RunEvent] = []
    with vidbatch.simulator(tmp_path / "simdata") as sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.data_dir == tmp_path / "simdata"
        options = vidbatch.RunOptions(rpm=60000, poll_interval=0)
        with sim.client() as client:
            result = ws.run(client, options, on_event=events.append)
        assert result.exit_code == 0 and result.progress.created == 2
        kinds = [e.kind for e in events]
        assert kinds[0] == vidbatch.EventKind.START and kinds.count(vidbatch.EventKind.DOWNLOADED) == 2
    assert {(j.name, j.state, j.output_present) for j in ws.status()} == {("fox", "done", True), ("owl", "done", True)}
    assert mp4.read_sim_metadata(tmp_path / "renders" / "fox.mp4")["prompt"] == "A fox in the snow"
    assert ws.plan().up_to_date


def test_a_sim_workspace_connects_to_a_simulator_kept_in_its_state(tmp_path: Path) -> None:
    manifest = tmp_path / "shots.toml"
    manifest.write_text(t2v_manifest({"fox": "A fox in the snow"}))
    ws = vidbatch.load([manifest], sim=True)
    assert ws.default_options().poll_interval < vidbatch.RunOptions().poll_interval
    with vidbatch.connect(ws) as client:
        assert ws.run(client, vidbatch.RunOptions(rpm=60000, poll_interval=0)).exit_code == 0
    assert (tmp_path / "renders-sim" / "fox.mp4").exists()
    assert (ws.state_dir / "server").is_dir(), "the simulator's tasks live under the sim state"
    (tmp_path / "renders-sim" / "fox.mp4").unlink()
    with vidbatch.connect(ws) as client:  # a new simulator still has the task: fetched again, not paid
        result = ws.run(client, vidbatch.RunOptions(rpm=60000, poll_interval=0))
    assert result.exit_code == 0 and result.progress.created == 0
    assert (tmp_path / "renders-sim" / "fox.mp4").exists()


def test_errors_are_vidbatch_errors_with_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[jobs]]\nname = "a"\nmodel = "No-Such-Model"\nprompt = "x"\n')
    with pytest.raises(vidbatch.VidbatchError) as caught:
        vidbatch.load([bad])
    assert caught.value.exit_code == 2


def test_the_api_is_documented() -> None:
    # the names the API module defines or owns; Plan, RunOptions, RunResult, JobStatus and EventKind
    # are documented by their own modules (a dataclass's generated signature is no docstring)
    for name in ("load", "connect", "simulator", "Simulator", "Workspace", "RunEvent", "VidbatchError"):
        doc = getattr(vidbatch, name).__doc__
        assert doc and not doc.startswith(f"{name}("), name
    assert set(vidbatch.__all__) <= set(dir(vidbatch))
    # the package lists the API's names again so that importing it stays lazy: keep the two lists one
    from vidbatch import api

    assert vidbatch.__all__ == api.__all__
    assert "Python API" in (ROOT / "README.md").read_text()


def _modules_after(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def test_import_vidbatch_and_help_stay_cheap() -> None:
    assert _modules_after("import vidbatch") == []
    assert _modules_after("from vidbatch.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass") == []
    for command in ("run", "plan", "gc", "watch", "status"):
        assert _modules_after(f"from vidbatch.cli import main\ntry:\n    main(['{command}', '--help'])\nexcept SystemExit:\n    pass") == [], command


def test_run_help_shows_the_sim_defaults_the_library_uses() -> None:
    from click.testing import CliRunner

    from vidbatch import project
    from vidbatch.cli import main

    text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert f"with --sim: {project.SIM_RPM}" in text and f"with --sim: {project.SIM_POLL_INTERVAL:g}" in text
