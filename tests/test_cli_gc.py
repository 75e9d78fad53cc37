"""``vidbatch gc`` through the real CLI, against the simulator over HTTP, with a real SQLite state:
it never deletes a file or drops a row a job still wants, deletes an orphan's file only while it
holds the recorded video, takes ``--sim`` like every command, and asks on a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .helpers import cli

FAST = ["--poll-interval", "0", "--rpm", "60000"]
SHOTS = {"a": "A lighthouse at dusk", "b": "A fox in the snow", "c": "An owl at night"}


def _manifest(path: Path, prompts: dict[str, str], output_dir: str = "renders") -> Path:
    jobs = "".join(f'[[jobs]]\nname = "{n}"\nprompt = "{p}"\n\n' for n, p in prompts.items())
    path.write_text(f'output_dir = "{output_dir}"\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n\n{jobs}')
    return path


def test_gc_takes_sim_and_deletes_only_the_orphans_recorded_video(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", "--sim", manifest, *FAST]).exit_code == 0
    folder = tmp_path / "renders-sim"
    _manifest(manifest, {"a": SHOTS["a"]})  # b and c leave the manifest
    (folder / "c.mp4").write_bytes(b"my own edit of c")  # c's file no longer holds its render
    out = cli(["gc", "--sim", manifest, "--delete-outputs"])
    assert out.exit_code == 0, out.output
    assert (folder / "a.mp4").exists(), "a is still wanted"
    assert not (folder / "b.mp4").exists(), "b's recorded video is deleted"
    assert (folder / "c.mp4").read_bytes() == b"my own edit of c", "a changed file is never deleted"
    assert "2 orphans dropped" in out.output and "1 file kept" in out.output
    assert "c.mp4 kept: it no longer holds the recorded video" in out.output
    plan = json.loads(cli(["plan", "--sim", "--json", manifest]).output)
    assert plan["orphans"] == [] and [j["action"] for j in plan["jobs"]] == ["skip"]


def test_gc_never_deletes_the_picked_take_of_a_shot_whose_takes_were_lowered(tmp_path: Path, sim_env) -> None:
    manifest = tmp_path / "ad.toml"
    manifest.write_text('output_dir = "renders"\n[[jobs]]\nname = "a"\nmodel = "MiniMax-Hailuo-02"\nprompt = "A fox"\ntakes = 3\n')
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert cli(["pick", manifest, "a", "3"]).exit_code == 0
    picked = (tmp_path / "renders" / "a.take3.mp4").read_bytes()
    manifest.write_text(manifest.read_text().replace("takes = 3", "takes = 1"))
    out = cli(["gc", manifest, "--delete-outputs", "-y"])
    assert out.exit_code == 0, out.output
    assert not (tmp_path / "renders" / "a.take2.mp4").exists(), "an unpicked extra take goes"
    assert (tmp_path / "renders" / "a.take3.mp4").read_bytes() == picked, "the picked take is a person's choice: kept"
    assert "a.take3.mp4 kept: the picked take of a in ad.picks.toml" in out.output
    manifest.write_text(manifest.read_text().replace("takes = 1", "takes = 3"))
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert sim_env.sim.calls["create"] == 4, "raising takes again renders take 2 only: the picked take is still there"
    assert (tmp_path / "renders" / "a.take3.mp4").read_bytes() == picked


def test_gc_never_drops_a_wanted_key_whatever_the_paths(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", "--sim", manifest, *FAST]).exit_code == 0
    # without --sim the paths disagree with the recorded ones; nothing is an orphan
    out = cli(["gc", "--state", tmp_path / ".vidbatch" / "sim", manifest, "--delete-outputs", "-y"])
    assert out.exit_code == 0, out.output
    assert "0 orphans dropped" in out.output
    assert len(list((tmp_path / "renders-sim").glob("*.mp4"))) == 3
    status = json.loads(cli(["status", "--sim", "--json", manifest]).output)
    assert status["counts"] == {"done": 3}


def test_gc_singular_and_dry_run_changes_nothing(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {k: v for k, v in SHOTS.items() if k != "c"})
    dry = cli(["gc", "-n", manifest, "--delete-outputs"])
    assert dry.exit_code == 0, dry.output
    assert "would drop 1 orphan and delete 1 file" in dry.output and "would drop c (done)" in dry.output
    assert "c.mp4 would be deleted" in dry.output and "to do it: vidbatch gc" in dry.output
    assert (tmp_path / "renders" / "c.mp4").exists()
    out = cli(["gc", manifest])
    assert "1 orphan dropped" in out.output and "c.mp4 kept" in out.output
    assert (tmp_path / "renders" / "c.mp4").exists()


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch, answer: bool) -> list[str]:
    from vidbatch.cli import run_cmds

    asked: list[str] = []

    def confirm(text: str, **kw: Any) -> bool:
        asked.append(text)
        return answer

    monkeypatch.setattr(run_cmds, "stdin_is_terminal", lambda: True)
    monkeypatch.setattr(run_cmds.click, "confirm", confirm)
    return asked


def test_gc_on_a_terminal_lists_and_asks(tmp_path: Path, sim_env, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {"a": SHOTS["a"]})
    asked = _on_a_terminal(monkeypatch, answer=False)
    out = cli(["gc", manifest, "--delete-outputs"])
    assert asked == ["Drop 2 orphans and delete 2 files?"]
    assert "would drop b (done)" in out.output and "cancelled; nothing was changed" in out.output
    assert out.exit_code == 2
    assert len(list((tmp_path / "renders").glob("*.mp4"))) == 3
    assert len(json.loads(cli(["plan", "--json", manifest]).output)["orphans"]) == 2

    asked = _on_a_terminal(monkeypatch, answer=True)
    out = cli(["gc", manifest, "--delete-outputs"])
    assert out.exit_code == 0 and len(asked) == 1 and "2 orphans dropped, 2 files deleted" in out.output
    assert [p.name for p in (tmp_path / "renders").glob("*.mp4")] == ["a.mp4"]


def test_gc_yes_does_not_ask(tmp_path: Path, sim_env, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {"a": SHOTS["a"]})
    asked = _on_a_terminal(monkeypatch, answer=False)
    out = cli(["gc", manifest, "-y"])
    assert out.exit_code == 0 and asked == [] and "2 orphans dropped" in out.output


def test_gc_keeps_the_render_an_edited_job_still_holds(tmp_path: Path, sim_env) -> None:
    """b and its copy b2 share one render; b2 leaves and b is edited (not run yet): b2's file is
    an orphan, but b.mp4 still holds that render, so undoing the edit must stay free."""
    manifest = _manifest(tmp_path / "ad.toml", {"b": "A fox in the snow", "b2": "A fox in the snow"})
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {"b": "A fox in the rain"})
    out = cli(["gc", manifest, "--delete-outputs", "-y"])
    assert out.exit_code == 0 and "1 orphan dropped, 1 file deleted" in out.output, out.output
    assert not (tmp_path / "renders" / "b2.mp4").exists()
    _manifest(manifest, {"b": "A fox in the snow"})  # undo the edit
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert [j["action"] for j in plan["jobs"]] == ["skip"] and plan["summary"]["billable"] == 0


# --- cached frames and posters (issue 14) ---------------------------------------------------------

FILM = """output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "opening"
prompt = "{opening}"

[[jobs]]
name = "follow"
first_frame_image = "frame:opening"
prompt = "The lighthouse, the camera moves on"
{aside}
[[sequences]]
name = "film"
shots = ["opening", "follow"]
"""
ASIDE = '\n[[jobs]]\nname = "aside"\nprompt = "A gull over the sea"\n'


def _film(path: Path, opening: str = "A lighthouse at dawn", aside: bool = True) -> Path:
    path.write_text(FILM.format(opening=opening, aside=ASIDE if aside else ""))
    return path


def _listing(*folders: Path) -> dict[str, int]:
    """Each file under ``folders`` with its inode and mtime: a file deleted and made again differs."""
    return {str(p): hash((p.stat().st_ino, p.stat().st_mtime_ns)) for f in folders if f.is_dir() for p in sorted(f.iterdir())}


def test_gc_deletes_the_frames_and_posters_nothing_needs_and_keeps_the_rest(tmp_path: Path, sim_env) -> None:
    from vidbatch import project, report

    manifest = _film(tmp_path / "film.toml")
    renders, frames, posters = tmp_path / "renders", tmp_path / "renders" / "frames", tmp_path / "renders" / "posters"

    def run_and_report() -> None:
        out = cli(["run", manifest, *FAST])
        assert out.exit_code == 0, out.output
        report.write_report(project.load([manifest]), renders / "report.html")

    run_and_report()
    first_frames, first_posters = set(_listing(frames)), set(_listing(posters))
    assert len(first_frames) == 1 and len([p for p in first_posters if "sheet-" in p]) == 1
    # the opening renders again (a new video: a new frame, follow again, the cut again); aside leaves
    _film(manifest, opening="A lighthouse at dusk", aside=False)
    run_and_report()
    (frames / "notes.txt").write_text("mine")  # files not named as vidbatch names them stay
    (posters / "logo.png").write_bytes(b"mine")
    old = (first_frames | first_posters) - set(_listing(frames, posters))
    assert not old, "run and report do not delete"
    before = _listing(frames, posters)

    dry = cli(["gc", "-n", manifest])
    assert dry.exit_code == 0, dry.output
    assert _listing(frames, posters) == before, "a dry run deletes nothing"
    would = [line.split()[2] for line in dry.output.splitlines() if line.startswith("would delete ") and "(cached" in line]
    # the old frame, the posters of the old opening, follow and cut, the old sheet, aside's poster
    assert len(would) == 6, dry.output
    assert any(Path(w).parent.name == "frames" for w in would) and "would delete 6 cached frame or poster files" in dry.output
    assert "to do it: vidbatch gc" in dry.output

    out = cli(["gc", manifest])
    assert out.exit_code == 0, out.output
    assert "6 cached frame or poster files deleted" in out.output and "1 orphan dropped" in out.output
    after = _listing(frames, posters)
    assert len(after) == len(before) - 6
    assert str(frames / "notes.txt") in after and str(posters / "logo.png") in after
    assert len([p for p in after if p.endswith(".png") and Path(p).parent == frames]) == 1

    # nothing needed was deleted: the plan skips everything without taking the frame again, and
    # the report makes no poster or sheet anew
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert {j["action"] for j in plan["jobs"]} == {"skip"} and plan["summary"]["billable"] == 0
    run_and_report()
    assert _listing(frames, posters) == after
    again = cli(["gc", "-n", manifest])
    assert "cached" not in again.output and "would drop 0 orphans" in again.output, again.output


def test_gc_asks_before_deleting_cached_files_and_a_no_changes_nothing(tmp_path: Path, sim_env, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbatch import project, report

    manifest = _film(tmp_path / "film.toml", aside=False)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    report.write_report(project.load([manifest]), tmp_path / "renders" / "report.html")
    _film(manifest, opening="A lighthouse at dusk", aside=False)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    before = _listing(tmp_path / "renders" / "frames", tmp_path / "renders" / "posters")
    asked = _on_a_terminal(monkeypatch, answer=False)
    out = cli(["gc", manifest])
    assert out.exit_code == 2 and "cancelled; nothing was changed" in out.output, out.output
    assert len(asked) == 1 and "cached frame or poster file" in asked[0], asked
    assert _listing(tmp_path / "renders" / "frames", tmp_path / "renders" / "posters") == before


def test_gc_of_one_manifest_keeps_a_render_a_job_moved_to_another_manifest_wants(tmp_path: Path, sim_env) -> None:
    # two manifests share the state and the output folder; a job moves from b to a (same name,
    # same request, same file): a run of a claims it, and gc of b alone must not delete it
    a, b = _manifest(tmp_path / "a.toml", {"a": SHOTS["a"]}), _manifest(tmp_path / "b.toml", {"b": SHOTS["b"], "c": SHOTS["c"]})
    assert cli(["run", a, b, *FAST]).exit_code == 0
    _manifest(a, {"a": SHOTS["a"], "c": SHOTS["c"]})
    _manifest(b, {"b": SHOTS["b"]})
    assert cli(["run", a, b, *FAST]).exit_code == 0
    assert sim_env.sim.calls["create"] == 3
    out = cli(["gc", b, "--delete-outputs", "-y"])
    assert out.exit_code == 0, out.output
    assert "0 orphans dropped" in out.output
    assert (tmp_path / "renders" / "c.mp4").exists(), "a's job c still wants it"
    status = json.loads(cli(["status", "--json", a]).output)
    assert status["counts"] == {"done": 2}


def test_gc_of_one_manifest_keeps_the_render_another_manifest_holds_for_the_same_request(tmp_path: Path, sim_env) -> None:
    # a's job x and b's job y make the same request: one render, two files (b ran last); y leaves b
    a, b = _manifest(tmp_path / "a.toml", {"x": SHOTS["a"]}), _manifest(tmp_path / "b.toml", {"y": SHOTS["a"], "z": SHOTS["b"]})
    assert cli(["run", a, *FAST]).exit_code == 0
    assert cli(["run", b, *FAST]).exit_code == 0
    _manifest(b, {"z": SHOTS["b"]})
    out = cli(["gc", b, "--delete-outputs", "-y"])
    assert out.exit_code == 0, out.output
    assert not (tmp_path / "renders" / "y.mp4").exists(), "y's copy is b's orphan"
    assert (tmp_path / "renders" / "x.mp4").exists()
    status = json.loads(cli(["status", "--json", a]).output)
    assert status["counts"] == {"done": 1}, "a's job x keeps its render, its record and its history"
    history = json.loads(cli(["status", "--json", a, "--job", "x"]).output)
    assert history["events"], "x's history is kept"


def test_gc_while_a_run_holds_the_state_exits_4_without_offering_an_option_it_lacks(tmp_path: Path, sim_env) -> None:
    from vidbatch.state import Store

    manifest = _manifest(tmp_path / "ad.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {"a": SHOTS["a"]})
    store = Store(tmp_path / ".vidbatch")
    with store.run_lock():
        out = cli(["gc", manifest, "--delete-outputs", "-y"])
    store.close()
    assert out.exit_code == 4, out.output
    assert "another vidbatch run" in out.output and "--wait" not in out.output, "gc has no --wait"
    assert len(list((tmp_path / "renders").glob("*.mp4"))) == 3
