"""Picks: the file beside the manifest that says which take of each shot is chosen.

Fast tests of vidbatch.picks (reading, writing, chosen/rejected, bad files named by file, line
and shot), then the real `vidbatch pick` command through click's CliRunner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from vidbatch import picks
from vidbatch.errors import ManifestError

from .helpers import cli as run_cli


@dataclass(frozen=True)
class Take:
    shot: str
    take: int


def jobs(**takes: int) -> list[Take]:
    return [Take(shot.replace("_", "-"), n) for shot, count in takes.items() for n in range(1, count + 1)]


def test_picks_file_sits_beside_the_manifest(tmp_path):
    assert picks.picks_path(tmp_path / "shots.toml") == tmp_path / "shots.picks.toml"
    assert picks.picks_path(tmp_path / "film.json") == tmp_path / "film.picks.toml"


def test_no_file_means_no_picks_and_one_take_shots_choose_their_take(tmp_path):
    p = picks.load(tmp_path / "shots.toml", jobs(shot_01=1, shot_02=3))
    assert p.chosen("shot-01") == 1
    assert p.chosen("shot-02") is None  # three takes, no pick: waits for one
    assert p.chosen("never-heard-of") == 1  # a shot without takes has take 1
    assert p.rejected("shot-02") == frozenset()
    assert not p.path.exists()


def test_pick_reject_clear_round_trip_through_the_file(tmp_path):
    manifest = tmp_path / "shots.toml"
    p = picks.load(manifest, jobs(shot_02=3))
    p.pick("shot-02", 2)
    p.reject("shot-02", 1)
    p.reject("shot-02", 3)
    p.save("shots.toml")
    text = p.path.read_text()
    assert '["shot-02"]\npick = 2\nreject = [1, 3]\n' in text
    assert text.startswith("# Picks for shots.toml")

    again = picks.load(manifest, jobs(shot_02=3))
    assert again.chosen("shot-02") == 2
    assert again.rejected("shot-02") == {1, 3}
    assert [again.status("shot-02", t) for t in (1, 2, 3)] == ["rejected", "picked", "rejected"]

    again.reject("shot-02", 2)  # rejecting the pick un-picks it
    assert again.picked("shot-02") is None and again.rejected("shot-02") == {1, 2, 3}
    again.pick("shot-02", 1)  # picking a rejected take un-rejects it
    assert again.picked("shot-02") == 1 and again.rejected("shot-02") == {2, 3}
    again.clear("shot-02", 3)
    assert again.rejected("shot-02") == {2}
    again.clear("shot-02")
    again.save()
    assert "shot-02" not in again.path.read_text()
    assert picks.load(manifest).shots == {}


def test_save_is_canonical_and_quotes_any_name(tmp_path):
    manifest = tmp_path / "m.toml"
    p = picks.load(manifest)
    for shot in ("b", 'a "quoted" \\ name', "狐狸-冬"):
        p.pick(shot, 2)
    p.save()
    first = p.path.read_text()
    back = picks.load(manifest)
    assert {s: back.picked(s) for s in back.shots} == {"b": 2, 'a "quoted" \\ name': 2, "狐狸-冬": 2}
    back.save()
    assert back.path.read_text() == first  # rewriting changes nothing: diffs show only decisions
    assert first.index('"a \\"quoted') < first.index('["b"]') < first.index('"狐狸-冬"')


def test_a_pick_of_a_take_the_shot_no_longer_has_is_not_chosen(tmp_path):
    manifest = tmp_path / "m.toml"
    (tmp_path / "m.picks.toml").write_text('["s"]\npick = 4\n["gone"]\npick = 1\n')
    p = picks.load(manifest, jobs(s=3))
    assert p.chosen("s") is None
    assert p.stale() == [
        "m.picks.toml: shot gone is not in the manifest (renamed or removed?); its decisions are ignored: rename or delete its table",
        "m.picks.toml: shot s has no take 4 any more (it has takes 1-3); ignored: pick again, or delete it",
    ]


def test_update_reads_the_file_again_so_a_hand_edit_survives(tmp_path):
    manifest = tmp_path / "m.toml"
    p = picks.load(manifest)
    (tmp_path / "m.picks.toml").write_text('["a"]\npick = 3\n')  # a person edits meanwhile
    picks.update(manifest, lambda q: q.pick("b", 2))
    after = picks.load(manifest)
    assert (after.picked("a"), after.picked("b")) == (3, 2)
    assert p.shots == {}


@pytest.mark.parametrize(
    "text, line, shot, field, words",
    [
        ('["s"]\npick = 0\n', 2, "s", "pick", "from 1 to 20, not 0"),
        ('["s"]\npick = 21\n', 2, "s", "pick", "from 1 to 20, not 21"),
        ('["s"]\npick = "2"\n', 2, "s", "pick", "must be a take number (a whole number 1..20), not '2'"),
        ('["s"]\npick = true\n', 2, "s", "pick", "not True"),
        ('# c\n\n["s"]\nreject = 2\n', 4, "s", "reject", "must be a list"),
        ('["s"]\nreject = [1, 30]\n', 2, "s", "reject", "30 in the list must be a take number from 1 to 20"),
        ('["a"]\npick = 1\n\n["s"]\npick = 2\nreject = [2]\n', 6, "s", "reject", "both picked and rejected"),
        ('["s"]\npik = 2\n', 2, "s", "pik", "unknown key 'pik'"),
        ('s = 2\n', 1, "s", None, "must be a table"),
    ],
)
def test_bad_picks_files_name_file_line_and_shot(tmp_path, text, line, shot, field, words):
    (tmp_path / "m.picks.toml").write_text(text)
    with pytest.raises(ManifestError) as e:
        picks.load(tmp_path / "m.toml")
    problem = e.value.problems[0]
    assert (problem.file, problem.line, problem.job, problem.field) == (str(tmp_path / "m.picks.toml"), line, shot, field)
    assert words in problem.message
    assert e.value.exit_code == 2


def test_a_picks_file_that_is_not_toml_says_where(tmp_path):
    (tmp_path / "m.picks.toml").write_text('["s"]\npick = 2\npick = 3\n')
    with pytest.raises(ManifestError) as e:
        picks.load(tmp_path / "m.toml")
    assert e.value.problems[0].line == 3
    assert "picks file is not valid TOML" in str(e.value)


SHA = "ab" * 32


def test_a_pick_keeps_the_video_it_was_made_on_and_a_file_without_it_still_reads(tmp_path):
    manifest = tmp_path / "m.toml"
    p = picks.load(manifest, jobs(s=3, one=1))
    p.pick("s", 2, SHA)
    p.pick("one", 1, SHA)
    p.save("m.toml")
    assert f'["s"]\npick = 2\nvideo = "sha256:{SHA}"\n' in p.path.read_text()
    back = picks.load(manifest, jobs(s=3, one=1))
    assert (back.chosen("s"), back.seen("s")) == (2, SHA)
    assert back.seen("one") is None, "a one-take shot's only take is chosen, whatever renders"
    back.reject("s", 2)
    assert back.shots["s"].video is None, "un-picked: the video goes with the pick"
    back.pick("s", 3)
    assert (back.chosen("s"), back.seen("s")) == (3, None), "picked without a video: holds for any render"

    (tmp_path / "m.picks.toml").write_text('["s"]\npick = 2\n')  # written before picks kept videos
    old = picks.load(manifest, jobs(s=3))
    assert (old.chosen("s"), old.seen("s")) == (2, None)


@pytest.mark.parametrize(
    "text, words",
    [
        ('["s"]\npick = 2\nvideo = "abc"\n', "video must be \"sha256:\" and 64 hex digits"),
        ('["s"]\npick = 2\nvideo = 3\n', "not 3"),
        (f'["s"]\nreject = [1]\nvideo = "sha256:{SHA}"\n', "there is no pick"),
    ],
)
def test_a_bad_video_in_a_picks_file_names_its_line(tmp_path, text, words):
    (tmp_path / "m.picks.toml").write_text(text)
    with pytest.raises(ManifestError) as e:
        picks.load(tmp_path / "m.toml")
    problem = e.value.problems[0]
    assert (problem.job, problem.field, problem.line) == ("s", "video", 3)
    assert words in problem.message


def test_changing_methods_refuse_impossible_takes(tmp_path):
    p = picks.load(tmp_path / "m.toml")
    with pytest.raises(ValueError, match="from 1 to 20"):
        p.pick("s", 21)


# --- the CLI ---------------------------------------------------------------------------------------


MANIFEST = """\
[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "shot-01"
prompt = "a fox"
takes = 3

[[jobs]]
name = "shot-02"
prompt = "a hare"
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "shots.toml"
    path.write_text(MANIFEST)
    return path


def test_pick_command_writes_picks_and_rejects(manifest):
    result = run_cli(["pick", str(manifest), "shot-01", "2"])
    assert result.exit_code == 0, result.output
    assert "shot-01: take 2 picked" in result.output
    result = run_cli(["pick", str(manifest), "shot-01", "3", "--reject"])
    assert result.exit_code == 0, result.output
    p = picks.load(manifest)
    assert (p.picked("shot-01"), p.rejected("shot-01")) == (2, {3})
    result = run_cli(["pick", str(manifest), "shot-01", "--clear"])
    assert result.exit_code == 0, result.output
    assert picks.load(manifest).shots == {}


def test_pick_command_records_the_video_of_the_take_as_it_is_now(manifest):
    import hashlib

    take2 = manifest.parent / "renders" / "shot-01.take2.mp4"
    result = run_cli(["pick", str(manifest), "shot-01", "2"])
    assert result.exit_code == 0, result.output
    assert "take 2 has no video at" in result.output and "yet, so the pick holds for whatever it renders" in result.output
    assert picks.load(manifest).shots["shot-01"].video is None
    take2.parent.mkdir()
    take2.write_bytes(b"the video a person looked at")
    assert run_cli(["pick", str(manifest), "shot-01", "2"]).exit_code == 0
    assert picks.load(manifest).shots["shot-01"].video == hashlib.sha256(b"the video a person looked at").hexdigest()


def test_pick_command_refuses_unknown_shots_and_takes_with_exit_2(manifest):
    result = run_cli(["pick", str(manifest), "shot-9", "1"])
    assert result.exit_code == 2
    assert "no shot shot-9" in result.output and "shot-01, shot-02" in result.output
    result = run_cli(["pick", str(manifest), "shot-01", "4"])
    assert result.exit_code == 2
    assert "shot-01 has takes 1-3" in result.output
    assert not picks.picks_path(manifest).exists()


def test_plan_and_status_warn_about_picks_of_shots_and_takes_the_manifest_no_longer_has(manifest):
    picks.picks_path(manifest).write_text('["shot-01"]\npick = 4\n\n["shot-00"]\npick = 2\n')
    for command in (["plan"], ["status"]):
        result = run_cli([*command, str(manifest)])
        assert result.exit_code == 0, result.output
        assert "warning: shots.picks.toml: shot shot-00 is not in the manifest (renamed or removed?)" in result.output, command
        assert "warning: shots.picks.toml: shot shot-01 has no take 4 any more (it has takes 1-3)" in result.output, command
    for command in ("plan", "status"):
        doc = json.loads(run_cli([command, "--json", str(manifest)]).output)  # only JSON, warnings in it
        assert [w.split(";")[0] for w in doc["warnings"]] == [
            "shots.picks.toml: shot shot-00 is not in the manifest (renamed or removed?)",
            "shots.picks.toml: shot shot-01 has no take 4 any more (it has takes 1-3)",
        ], command
    result = run_cli(["plan", "--check", str(manifest)])
    assert result.exit_code == 1 and result.output == "", "--check prints nothing"


def test_a_bad_picks_file_stops_a_plan_that_depends_on_picks_and_is_a_warning_for_one_that_does_not(manifest):
    picks.picks_path(manifest).write_text('["shot-01"]\npick = "two"\n')
    result = run_cli(["plan", str(manifest)])
    assert result.exit_code == 0, "no chained shot or cut: the picks change nothing planned"
    assert f"warning: {picks.picks_path(manifest)}:2: job shot-01: field pick: must be a take number" in result.output
    assert "this plan does not depend on picks, but status, report and review stop on the file" in result.output
    doc = json.loads(run_cli(["plan", "--json", str(manifest)]).output)
    assert len(doc["warnings"]) == 1 and ":2: job shot-01: field pick:" in doc["warnings"][0]

    chained = MANIFEST + '\n[[jobs]]\nname = "shot-03"\nfirst_frame_image = "frame:shot-01"\nprompt = "the fox, later"\n'
    for text in (chained, MANIFEST + '\n[[sequences]]\nname = "film"\nshots = ["shot-01", "shot-02"]\n'):
        manifest.write_text(text)
        result = run_cli(["plan", str(manifest)])
        assert result.exit_code == 2, "which take shot-01 stands for decides what renders: never planned as if no pick"
        assert f"{picks.picks_path(manifest)}:2: job shot-01: field pick: must be a take number" in result.output


def test_run_warns_about_a_bad_picks_file_its_plan_does_not_depend_on_as_plan_does(manifest, sim_env):
    picks.picks_path(manifest).write_text('["shot-01"]\npick = = 2\n')
    where = f"{picks.picks_path(manifest)}:2: picks file is not valid TOML"
    assert f"warning: {where}" in run_cli(["plan", str(manifest)]).output
    for _ in range(2):  # rendering, then nothing to do: each run says it once, exit code unchanged
        result = run_cli(["run", str(manifest), "--rpm", "60000", "--poll-interval", "0"])
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if where in line]
        assert len(lines) == 1 and "warning" in lines[0] and "this plan does not depend on picks" in lines[0], result.output
    result = run_cli(["run", str(manifest), "--json"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [e["message"].split(":")[1] for e in events if e["event"] == "warning"] == ["2"]
