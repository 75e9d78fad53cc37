"""Watch mode and picks (issue 14): a new pick plans its manifest again, so the chained shots of
the re-picked shot render and its cuts are joined again, and nothing else renders; a picks file
is never taken for a manifest.

The pure parts (the folder map, the path rules) run in process; one test runs the real
``vidbatch watch`` against the simulator over loopback (see tests/test_watch.py for how it waits
without timing).
"""

from __future__ import annotations

from pathlib import Path

from vidbatch import mp4, project
from vidbatch.watching.folder import WatchedFolder
from vidbatch.watching.paths import folder_files, is_picks_file, looks_like_manifest, manifest_files

from .helpers import cli, t2v_manifest
from .test_watch import atomic_write, server, start_watch  # noqa: F401  (fixtures)
from .test_watching import fake_manifest

# --- path rules ---------------------------------------------------------------------------------


def test_a_picks_file_is_never_a_manifest_even_for_a_shot_named_jobs(tmp_path):
    (tmp_path / "shots.toml").write_text(t2v_manifest({"jobs": "A fox"}))
    picks = tmp_path / "shots.picks.toml"
    picks.write_text('["jobs"]\npick = 1\n')  # parses with a top-level "jobs", as a manifest would
    broken = tmp_path / "other.picks.toml"
    broken.write_text('["jobs"\npick = \n')  # mentions jobs and does not parse: still not a manifest
    assert is_picks_file(picks) and is_picks_file(broken)
    assert not looks_like_manifest(picks) and not looks_like_manifest(broken)
    assert looks_like_manifest(tmp_path / "shots.toml")
    assert picks in folder_files(tmp_path)
    assert manifest_files(tmp_path) == [tmp_path / "shots.toml"]
    # a folder named instead of manifests (`vidbatch run DIR`, `status DIR`) finds the same
    assert [m.path.name for m in project.load([tmp_path]).manifests] == ["shots.toml"]


def test_only_a_name_ending_in_the_picks_suffix_is_a_picks_file():
    assert not is_picks_file(Path("picks.toml"))  # a manifest may be called picks.toml
    assert not is_picks_file(Path("shots.toml")) and not is_picks_file(Path("shots.picks.json"))
    assert is_picks_file(Path("Shots.PICKS.toml"))


# --- the folder map -----------------------------------------------------------------------------


def test_a_manifest_reads_its_picks_file_before_it_exists(tmp_path):
    folder = WatchedFolder(tmp_path, tmp_path / ".vidbatch")
    shots, other = tmp_path / "shots.toml", tmp_path / "other.toml"
    folder.loaded(fake_manifest(shots, outputs={"a": "k1"}))
    folder.loaded(fake_manifest(other, outputs={"b": "k2"}, output_dir=tmp_path / "out2"))
    picks = tmp_path / "shots.picks.toml"
    assert not picks.exists()
    assert picks in folder.inputs(shots) and folder.readers(picks) == {shots}
    assert folder.interesting(picks)
    # created (or written atomically: the temporary name is ignored, the rename lands on it)
    picks.write_text('["a"]\npick = 1\n')
    assert not folder.interesting(tmp_path / "shots.picks.toml.vidbatch-new")
    batch = folder.triage({picks})
    assert batch.touched == {shots: [picks]} and not batch.new and not batch.ignored
    # deleted: the manifest is planned again too (no pick any more)
    picks.unlink()
    assert folder.triage({picks}).touched == {shots: [picks]}
    # never reported as "not a manifest" at start-up
    picks.write_text('["a"]\npick = 1\n')
    assert folder.unread([picks, tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]


def test_a_broken_manifest_is_retried_by_its_picks_file_and_a_forgotten_one_is_not(tmp_path):
    folder = WatchedFolder(tmp_path, tmp_path / ".vidbatch")
    shots = tmp_path / "shots.toml"
    picks = tmp_path / "shots.picks.toml"
    folder.failed(shots, "bad pick line 2")  # a bad picks file fails the load: fixing it resumes
    assert folder.readers(picks) == {shots}
    assert folder.forget(shots)
    assert folder.readers(picks) == set()
    picks.write_text('["a"]\npick = 1\n')
    batch = folder.triage({picks})
    assert batch.touched == {} and batch.new == set()
    assert batch.ignored == [picks], "an orphaned picks file is noted, never planned as a manifest"


# --- the real `vidbatch watch` ----------------------------------------------------------------------

#: one shot of two takes, and nothing that reads its picks (no chained shot, no cut)
TAKES_ONLY = """output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "opening"
prompt = "A lighthouse at dawn"
takes = 2
"""

FILM = TAKES_ONLY + """
[[jobs]]
name = "follow"
first_frame_image = "frame:opening"
prompt = "The lighthouse, the camera moves on"

[[jobs]]
name = "aside"
prompt = "A gull over the sea"

[[sequences]]
name = "film"
shots = ["opening", "follow"]
"""


def test_a_pick_while_watching_renders_only_the_dependent_shot_and_joins_the_cut_again(tmp_path, server, start_watch):  # noqa: F811
    folder = tmp_path / "shots"
    folder.mkdir()
    manifest = folder / "film.toml"
    manifest.write_text(FILM)
    w = start_watch(server)
    first = w.settled_after_plan("film.toml", 1)
    assert first["actions"] == {"submit": 3, "blocked": 1}, first  # two takes of opening, aside; follow waits for a pick
    assert server.sim.calls["create"] == 3
    cut = folder / "renders" / "film.mp4"
    assert not cut.exists()
    outputs = {p: p.stat().st_mtime_ns for p in (folder / "renders").glob("*.mp4")}

    # a pick by `vidbatch pick` (it takes no lock: the watcher holds the state folder)
    result = cli("pick", manifest, "opening", "1")
    assert result.exit_code == 0, result.output
    w.settled_after_plan("film.toml", 2)
    w.wait_for(lambda: [e for e in w.of("joined") if e.get("job") == "film"], "the cut to be joined")
    changed = w.of("changed", "film.toml")
    assert changed and changed[-1]["paths"] == [str(folder / "film.picks.toml")]
    assert server.sim.calls["create"] == 4, "only the chained shot renders"
    assert server.sim.creates_for("camera moves on") == 1
    assert mp4.check_mp4(cut) == []
    joined_once = cut.stat().st_mtime_ns
    for p, mtime in outputs.items():
        assert p.stat().st_mtime_ns == mtime, f"{p.name} was written again"

    # a hand edit re-picks take 2: follow renders from the new frame, the cut is joined again
    atomic_write(folder / "film.picks.toml", '["opening"]\npick = 2\n')
    w.settled_after_plan("film.toml", 3)
    w.wait_for(lambda: len([e for e in w.of("joined") if e.get("job") == "film"]) == 2, "the cut to be joined again")
    assert server.sim.calls["create"] == 5
    assert server.sim.creates_for("camera moves on") == 2
    assert cut.stat().st_mtime_ns != joined_once and mp4.check_mp4(cut) == []
    for p, mtime in outputs.items():
        assert p.stat().st_mtime_ns == mtime, f"{p.name} was written again"
    assert not w.of("new"), "the picks file was never taken for a new manifest"
    assert not [e for e in w.of("changed") if e.get("new")]
    assert w.proc.poll() is None



def test_watch_warns_about_its_picks_files_as_plan_and_run_do(tmp_path, server, start_watch):  # noqa: F811
    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "film.toml").write_text(TAKES_ONLY)
    (folder / "film.picks.toml").write_text('["opening"]\npick = = 1\n')  # not TOML: this plan does not depend on it
    w = start_watch(server)
    w.settled_after_plan("film.toml", 1)
    warned = [e["message"] for e in w.of("warning", "film.toml")]
    assert any("film.picks.toml:2" in m and "not valid TOML" in m for m in warned), warned

    atomic_write(folder / "film.picks.toml", '["closing"]\npick = 1\n')  # a shot the manifest does not have
    w.settled_after_plan("film.toml", 2)
    warned = [e["message"] for e in w.of("warning", "film.toml")][len(warned):]
    assert any("closing" in m for m in warned), warned
    assert w.proc.poll() is None
