"""Issue 10: plans say what runs do, and no command destroys or rewrites a paid render.
Through the real CLI, against the simulator over HTTP, with a real SQLite state."""

from __future__ import annotations

import json
from pathlib import Path

from vidbatch import mp4

from .helpers import cli, creates

FAST = ["--poll-interval", "0", "--rpm", "60000"]

TAKES = """
output_dir = "renders"
[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "hero-take{{ take }}"
prompt = "A hero walks into the light"
matrix = { take = [1, 2, 3] }
"""


def test_identical_requests_plan_one_submit_and_reuse_after(tmp_path: Path, sim_env) -> None:
    manifest = tmp_path / "takes.toml"
    manifest.write_text(TAKES)
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    actions = {j["name"]: (j["action"], j["after"]) for j in plan["jobs"]}
    assert actions == {
        "hero-take1": ("submit", None),
        "hero-take2": ("reuse", "hero-take1"),
        "hero-take3": ("reuse", "hero-take1"),
    }
    assert plan["summary"]["billable"] == 1
    text = cli(["plan", manifest]).output
    assert "1 billable render" in text and "identical request to hero-take1" in text

    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 1, "the plan promised one create"
    videos = {p.name: p.read_bytes() for p in (tmp_path / "renders").glob("*.mp4")}
    assert sorted(videos) == ["hero-take1.mp4", "hero-take2.mp4", "hero-take3.mp4"]
    assert len(set(videos.values())) == 1
    assert all(mp4.check_mp4(tmp_path / "renders" / n) == [] for n in videos)


def _manifest(path: Path, prompts: dict[str, str], output_dir: str = "renders") -> Path:
    jobs = "".join(f'[[jobs]]\nname = "{n}"\nprompt = "{p}"\n\n' for n, p in prompts.items())
    path.write_text(f'output_dir = "{output_dir}"\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n\n{jobs}')
    return path


SHOTS = {"a": "A lighthouse at dusk", "b": "A fox in the snow", "c": "An owl at night"}


def test_gc_on_the_sim_state_without_sim_deletes_nothing_wanted(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", "--sim", manifest, *FAST]).exit_code == 0
    videos = sorted((tmp_path / "renders-sim").glob("*.mp4"))
    assert len(videos) == 3
    before = {p: p.read_bytes() for p in videos}
    # the reported mistake: the sim state, but output paths computed without --sim
    out = cli(["gc", "--state", tmp_path / ".vidbatch" / "sim", manifest, "--delete-outputs"])
    assert out.exit_code == 0, out.output
    assert {p: p.read_bytes() for p in sorted((tmp_path / "renders-sim").glob("*.mp4"))} == before
    again = cli(["run", "--sim", manifest, *FAST])
    assert "0 renders created" in again.output


def test_gc_after_moving_output_dir_deletes_nothing_wanted(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, SHOTS, output_dir="final")
    out = cli(["gc", manifest, "--delete-outputs"])
    assert out.exit_code == 0, out.output
    assert len(list((tmp_path / "renders").glob("*.mp4"))) == 3, "the old folder's videos are still wanted"
    calls = creates(sim_env)
    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == calls, "moving output_dir copies the renders; it never pays again"
    assert len(list((tmp_path / "final").glob("*.mp4"))) == 3


def test_undo_of_an_edit_plans_a_download_and_says_why(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "shots.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {**SHOTS, "b": "A fox in the rain"})
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, SHOTS)  # revert
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    b = next(j for j in plan["jobs"] if j["name"] == "b")
    assert b["action"] == "download"
    assert "missing" not in b["reason"] and "another version" in b["reason"]
    calls = creates(sim_env)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert creates(sim_env) == calls, "undoing an edit costs no render"
    assert mp4.read_sim_metadata(tmp_path / "renders" / "b.mp4")["prompt"] == "A fox in the snow"


def test_plan_shows_the_words_that_changed_in_a_long_prompt(tmp_path: Path, sim_env) -> None:
    long = "A red fox trots through a quiet spring forest at dawn, soft morning light, shallow depth of field, 35mm film grain"
    manifest = _manifest(tmp_path / "shots.toml", {"fox": long})
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {"fox": long.replace("quiet spring", "snowy winter")})
    text = cli(["plan", manifest]).output
    assert "[quiet spring -> snowy winter]" in text, text


def test_run_sim_resumes_after_ctrl_c_and_downloads_again(tmp_path: Path) -> None:
    """The --sim simulator keeps its tasks under the --sim state folder: Ctrl-C, resume and
    re-download behave as against MiniMax (issue 10 §2)."""
    import signal

    from vidbatch.sim import SimConfig, running_simulator

    from .helpers import cli_subprocess, t2v_manifest

    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "Sim shot A", "b": "Sim shot B"}))
    proc = cli_subprocess(["run", manifest, "--sim", "--sim-latency", "3600", "--json"])
    assert proc.stdout is not None
    submitted = 0
    while submitted < 2:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        if line.startswith("{") and json.loads(line)["event"] == "submitted":
            submitted += 1
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    with running_simulator(SimConfig(data_dir=tmp_path / ".vidbatch" / "sim" / "server")) as server:
        assert len(server.sim.tasks) == 2
        server.sim.advance(7200)  # the renders finish while nobody watches
    result = cli(["run", manifest, "--sim", *FAST])
    assert result.exit_code == 0, result.output
    assert "0 renders created" in result.output, "resumed: creates equal jobs"
    (tmp_path / "renders-sim" / "a.mp4").unlink()
    result = cli(["run", manifest, "--sim", *FAST])
    assert result.exit_code == 0 and "0 renders created" in result.output, result.output
    assert mp4.read_sim_metadata(tmp_path / "renders-sim" / "a.mp4")["prompt"] == "Sim shot A"
