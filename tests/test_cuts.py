"""Cuts (issue 14): a manifest's sequences of shots joined into one MP4, locally, rebuilt only when
a shot's picked video changed. The real CLI against the simulator on loopback; durations and
frames checked by decoding."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from vidbatch import media, mp4, project
from vidbatch.cuts import CutAction

from .helpers import api_calls, cli, creates, json_events
from .test_report import browser  # noqa: F401,F811  (the headless Chromium fixture)

FAST = ["--poll-interval", "0", "--rpm", "60000"]

FILM = """output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "shot-{{ n }}"
prompt = "A lighthouse, shot {{ n }}"
matrix = { n = ["01", "02", "03"] }

[[sequences]]
name = "film"
shots = ["shot-01", "shot-02", "shot-03"]

[[sequences]]
name = "teaser"
shots = ["shot-03", "shot-01"]
output = "cuts/teaser.mp4"
"""


def write_film(folder: Path, text: str = FILM) -> Path:
    path = folder / "film.toml"
    path.write_text(text)
    return path


def joined(output: str) -> list[str]:
    return [e["job"] for e in json_events(output) if e["event"] == "joined"]


def test_a_sequence_is_one_playable_mp4_as_long_as_its_shots(tmp_path, sim_env):
    manifest = write_film(tmp_path)
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert [(c["name"], c["action"]) for c in plan["cuts"]] == [("film", "wait"), ("teaser", "wait")]
    assert plan["summary"]["billable"] == 3, "a cut is a local step: it costs no render"

    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 3 and sorted(joined(result.output)) == ["film", "teaser"]
    renders = tmp_path / "renders"
    film, teaser = renders / "film.mp4", renders / "cuts" / "teaser.mp4"
    assert mp4.check_mp4(film) == [] and mp4.check_mp4(teaser) == []
    shots = [media.probe(renders / f"shot-0{n}.mp4", decode=True) for n in (1, 2, 3)]
    cut = media.probe(film, decode=True)
    assert abs(cut.duration - sum(s.duration for s in shots)) < 1e-6
    assert cut.frames == sum(s.frames for s in shots)
    # the shots play in order: the cut's frame at each seam is the next shot's first frame
    start = 0.0
    for n, shot in enumerate(shots, 1):
        assert media.extract_frame(film, start) == media.extract_frame(renders / f"shot-0{n}.mp4", last=False)
        start += shot.duration
    assert media.extract_frame(teaser, 0.0) == media.extract_frame(renders / "shot-03.mp4", last=False)
    event = next(e for e in json_events(result.output) if e["event"] == "joined" and e["job"] == "film")
    assert event["reencoded"] is False, "the simulator's clips share their codec parameters: copied"


def test_a_cut_is_rebuilt_only_when_a_shots_video_changes(tmp_path, sim_env):
    manifest = write_film(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    film = tmp_path / "renders" / "film.mp4"
    before = (film.read_bytes(), film.stat().st_mtime_ns)
    calls = api_calls(sim_env)

    again = cli(["run", "--json", manifest, *FAST])
    assert again.exit_code == 0 and joined(again.output) == [], "nothing changed: nothing joined"
    assert (film.read_bytes(), film.stat().st_mtime_ns) == before and api_calls(sim_env) == calls
    assert cli(["plan", "--check", manifest]).exit_code == 0
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert [c["action"] for c in plan["cuts"]] == ["skip", "skip"]

    # a deleted cut is joined again from the videos in place: no API call
    film.unlink()
    assert cli(["plan", "--check", manifest]).exit_code == 1
    out = cli(["plan", manifest]).output
    assert "film" in out and "cut file is missing" in out and "local, no API call" in out
    rebuilt = cli(["run", "--json", manifest, *FAST])
    assert joined(rebuilt.output) == ["film"] and api_calls(sim_env) == calls
    assert film.read_bytes() == before[0], "the same videos joined again give the same file"

    # shot-02 rendered again: both cuts that hold it are joined again... only film holds it
    manifest.write_text(FILM.replace('"A lighthouse, shot {{ n }}"', '"A lighthouse, shot {{ n }}{% if n == \'02\' %}, at night{% endif %}"'))
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert {c["name"]: c["action"] for c in plan["cuts"]} == {"film": "wait", "teaser": "skip"}
    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 0 and creates(sim_env) == 4
    assert joined(result.output) == ["film"]
    assert film.read_bytes() != before[0]


def test_a_cut_takes_the_picked_take_and_is_rebuilt_when_the_pick_changes(tmp_path, sim_env):
    manifest = write_film(tmp_path, FILM.replace('matrix = { n = ["01", "02", "03"] }', 'matrix = { n = ["01", "02", "03"] }\ntakes = 2'))

    def run() -> list[str]:
        result = cli(["run", "--json", manifest, *FAST])
        return joined(result.output)

    assert run() == [], "every shot has two takes and no pick: no cut can be joined"
    assert creates(sim_env) == 6
    for shot in ("shot-01", "shot-03"):
        assert cli(["pick", manifest, shot, "1"]).exit_code == 0
    assert run() == ["teaser"], "film still waits for a pick of shot-02; teaser does not hold it"
    renders = tmp_path / "renders"
    assert cli(["pick", manifest, "shot-02", "2"]).exit_code == 0
    assert run() == ["film"]
    seam = media.probe(renders / "shot-01.mp4").duration
    assert media.extract_frame(renders / "film.mp4", seam) == media.extract_frame(renders / "shot-02.take2.mp4", last=False)
    assert run() == [], "the same pick: nothing to join"
    assert cli(["pick", manifest, "shot-02", "1"]).exit_code == 0
    assert run() == ["film"]
    assert media.extract_frame(renders / "film.mp4", seam) == media.extract_frame(renders / "shot-02.mp4", last=False)
    assert creates(sim_env) == 6, "picks and joins cost no render"


def test_a_cut_is_not_joined_from_a_picked_take_rendered_again_since_it_was_picked(tmp_path, sim_env):
    manifest = write_film(tmp_path, FILM.replace('matrix = { n = ["01", "02", "03"] }', 'matrix = { n = ["01", "02", "03"] }\ntakes = 2'))
    assert cli(["run", manifest, *FAST]).exit_code == 0
    for shot in ("shot-01", "shot-02", "shot-03"):
        assert cli(["pick", manifest, shot, "2"]).exit_code == 0
    result = cli(["run", "--json", manifest, *FAST])
    assert joined(result.output) == ["film", "teaser"]
    film = (tmp_path / "renders" / "film.mp4").read_bytes()

    manifest.write_text(FILM.replace('"A lighthouse, shot {{ n }}"', '"A lighthouse, shot {{ n }}{% if n == \'02\' %}, at night{% endif %}"').replace(
        'matrix = { n = ["01", "02", "03"] }', 'matrix = { n = ["01", "02", "03"] }\ntakes = 2'))
    result = cli(["run", "--json", manifest, *FAST])
    assert joined(result.output) == [], "shot-02's picked take is a render nobody has seen"
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    cuts = {c["name"]: (c["action"], c["reason"]) for c in plan["cuts"]}
    assert cuts["teaser"][0] == "skip"
    assert cuts["film"][0] == "blocked" and "shot-02's picked take 2 was rendered again since it was picked" in cuts["film"][1]
    assert (tmp_path / "renders" / "film.mp4").read_bytes() == film

    assert cli(["pick", manifest, "shot-02", "2"]).exit_code == 0
    assert joined(cli(["run", "--json", manifest, *FAST]).output) == ["film"]


def test_a_cut_of_a_failed_shot_is_not_joined_and_says_why(tmp_path, sim_env):
    manifest = write_film(tmp_path, FILM.replace('"A lighthouse, shot {{ n }}"', '"A lighthouse, shot {{ n }}{% if n == \'03\' %} sim-fail{% endif %}"'))
    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 1
    blocked = {e["job"]: e["message"] for e in json_events(result.output) if e["event"] == "blocked"}
    assert set(blocked) == {"film", "teaser"} and "shot-03 failed" in blocked["film"]
    assert not (tmp_path / "renders" / "film.mp4").exists()
    plan = cli(["plan", manifest])
    assert "blocked" in plan.output and "shot-03 failed" in plan.output


def test_bad_sequences_exit_2_before_any_call(tmp_path, sim_env):
    cases = {
        'shots = ["shot-01", "shot-2"]': ["sequence film", "field shots", "'shot-2' names no job", "did you mean shot-02"],
        'shots = ["shot-01"]\noutput = "shot-01.mp4"': ["sequence film", "field output", "also the output of job shot-01"],
        'shots = ["shot-01"]\noutput = "../film.mp4"': ["sequence film", "field output", "leaves output_dir"],
        'shots = []': ["sequences[0].shots"],
    }
    for bad, expected in cases.items():
        manifest = write_film(tmp_path, FILM.replace('shots = ["shot-01", "shot-02", "shot-03"]', bad))
        for command in (["validate", manifest], ["run", manifest, *FAST]):
            result = cli(command)
            assert result.exit_code == 2, (bad, result.output)
            for text in expected:
                assert text in result.output, (bad, result.output)
    duplicate = write_film(tmp_path, FILM.replace('name = "teaser"', 'name = "film"'))
    result = cli(["validate", duplicate])
    assert result.exit_code == 2 and "sequence names must be unique" in result.output
    assert api_calls(sim_env) == 0 and not (tmp_path / ".vidbatch").exists()


def test_a_cut_may_not_replace_another_manifests_render_nor_another_cut(tmp_path, sim_env):
    """A sequence whose output is a job's output in another manifest sharing output_dir (or
    another sequence's output) would overwrite that render at every run: refused before any call."""
    manifest = write_film(tmp_path, FILM.replace('output = "cuts/teaser.mp4"', 'output = "other.mp4"'))
    other = tmp_path / "other.toml"
    other.write_text('output_dir = "renders"\n\n[[jobs]]\nname = "other"\nmodel = "MiniMax-Hailuo-02"\nprompt = "A pier"\n')
    for command in (["validate", manifest, other], ["run", manifest, other, *FAST]):
        result = cli(command)
        assert result.exit_code == 2, result.output
        assert "sequence teaser" in result.output and "field output" in result.output, result.output
        assert "also written by job other of" in result.output and "other.toml;" in result.output, result.output
    same = write_film(tmp_path, FILM.replace('output = "cuts/teaser.mp4"', 'output = "film.mp4"'))
    result = cli(["validate", same])
    assert result.exit_code == 2 and "sequence teaser" in result.output and "also written by sequence film" in result.output, result.output
    assert api_calls(sim_env) == 0 and not (tmp_path / "renders").exists()


def test_the_plan_of_cuts_in_process(tmp_path):
    from vidbatch import cuts

    manifest = write_film(tmp_path)
    ws = project.load([manifest])
    assert [q.name for q in ws.manifests[0].sequences] == ["film", "teaser"]
    plan = cuts.plan(ws.manifests, None)
    assert [(c.sequence.name, c.action) for c in plan.cuts] == [("film", CutAction.WAIT), ("teaser", CutAction.WAIT)]
    assert not plan.up_to_date and plan.summary()["cuts"] == {"wait": 2}


# --- the report: posters, contact sheets, the cut at the top -----------------------------------------


def test_the_report_shows_the_cut_first_with_a_contact_sheet_and_a_poster_per_video(tmp_path, sim_env):
    from vidbatch import report

    from .test_report import parse

    manifest = write_film(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    out = tmp_path / "renders" / "report.html"
    ws = project.load([manifest])
    written = report.write_report(ws, out)
    assert [(c.name, c.note) for c in written.cuts] == [("film", "up to date"), ("teaser", "up to date")]
    main = parse(out.read_text(encoding="utf-8")).find("main")
    first = next(n for n in main.iter() if n.tag in ("section", "article"))
    assert first.attrs["class"] == "cuts", "the cuts come before the jobs"
    film = first.find("article")
    assert film.find("video").attrs["src"] == "film.mp4"
    sheet = tmp_path / "renders" / film.find("img", "sheet").attrs["src"]
    image = media.decode_png(sheet.read_bytes())
    assert (image.width, image.height) == (3 * 240, 135), "one frame per shot, 240 px wide each"

    posters = {}
    for card in main.find_all("article", "card"):
        video = card.find("video")
        poster = tmp_path / "renders" / urllib.parse.unquote(video.attrs["poster"])
        shot = tmp_path / "renders" / video.attrs["src"]
        assert poster.name == f"{_sha256(shot)}.png", "named by the video's hash"
        assert poster.read_bytes() == media.poster(shot)
        posters[poster] = poster.stat().st_mtime_ns
    assert len(posters) == 3

    report.write_report(ws, out)  # again: the posters are not extracted a second time
    assert {p: p.stat().st_mtime_ns for p in posters} == posters


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_report_before_any_run_shows_the_cut_as_not_joined(tmp_path):
    from vidbatch import report

    manifest = write_film(tmp_path)
    written = report.write_report(project.load([manifest]), tmp_path / "report.html")
    assert [(c.video_src, c.sheet_src) for c in written.cuts] == [(None, None), (None, None)]
    assert "Not joined yet" in (tmp_path / "report.html").read_text(encoding="utf-8")


@pytest.mark.browser
def test_the_cut_plays_in_headless_chromium(tmp_path, sim_env, browser):  # noqa: F811
    from vidbatch import report

    from .test_report import _open

    manifest = write_film(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    out = tmp_path / "renders" / "report.html"
    report.write_report(project.load([manifest]), out)
    page, errors = _open(browser, out)
    page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)", timeout=15_000)
    cut = page.eval_on_selector(".cuts video", "v => ({error: v.error && v.error.code, w: v.videoWidth, d: v.duration})")
    assert cut["error"] is None and cut["w"] == 640 and abs(cut["d"] - 6.0) < 0.1
    # the sheets load lazily: bring each into view, then wait for it to load or fail
    for sheet in page.locator(".cuts img.sheet").all():
        sheet.scroll_into_view_if_needed()
    page.wait_for_function(
        "[...document.querySelectorAll('.cuts img.sheet')].every(i => i.complete)",
        timeout=15_000,
    )
    sheets = page.eval_on_selector_all(".cuts img.sheet", "is => is.map(i => i.naturalWidth)")
    assert sheets == [720, 480]
    posters = page.eval_on_selector_all(".card video", "vs => vs.map(v => v.poster)")
    assert len(posters) == 3 and all(p.endswith(".png") for p in posters)
    page.click("#play-all")  # plays the cards, not the cut
    assert page.eval_on_selector(".cuts video", "v => v.paused")
    assert errors == []
