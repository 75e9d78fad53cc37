"""Chained shots (issue 14): a job's first frame is a frame of another job's video.

Integration tests run the real CLI against the simulator on loopback (its tasks keep the requests
they were sent, so a test compares the bytes of the image a shot was given with the frame of the
video before it); the bad-frame tests use a scripted client that serves 320x180 clips (too small
for the API's image rule). Pure logic (parsing, the graph) is tested in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidbatch import chain, images, media, project
from vidbatch.errors import ManifestError
from vidbatch.manifest import frames, load_manifest
from vidbatch.plan import Action
from vidbatch.runner import RunOptions
from vidbatch.state import Store

from .fakes import FakeClient, write_video
from .conftest import TEST_KEY
from .helpers import api_calls, cli, creates, json_events

FAST = ["--poll-interval", "0", "--rpm", "60000"]

CHAIN = """output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "shot-01"
prompt = "A fox wakes up in a {{ place }}"

[[jobs]]
name = "shot-{{ n }}"
first_frame_image = "frame:shot-{{ prev }}"
prompt = "The fox, scene {{ n }}"
matrix = { n = ["02"], prev = ["01"] }

[[jobs]]
name = "shot-04"
first_frame_image = "frame:shot-03@last"
prompt = "The fox, scene 04"

[[jobs]]
name = "shot-03"
first_frame_image = "frame:shot-02"
prompt = "The fox, scene 03"

[vars]
place = "forest"
"""


def write_chain(folder: Path, text: str = CHAIN) -> Path:
    path = folder / "chain.toml"
    path.write_text(text)
    return path


def sent_image(sim, prompt: str, field: str = "first_frame_image") -> bytes:
    """The image bytes the one task created with ``prompt`` was sent."""
    tasks = [t for t in sim.sim.tasks.all_tasks() if t.request.get("prompt") == prompt]
    assert len(tasks) == 1, [t.request.get("prompt") for t in sim.sim.tasks.all_tasks()]
    _, data = images.decode_data_url(tasks[0].request[field])
    return data


def prompts_created(sim) -> list[str]:
    return [t.request["prompt"] for t in sorted(sim.sim.tasks.all_tasks(), key=lambda t: t.created_at)]


# --- one run, in dependency order -------------------------------------------------------------------


def test_a_chain_of_four_renders_in_dependency_order_in_one_run(tmp_path, sim_env):
    manifest = write_chain(tmp_path)
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert [(j["name"], j["action"]) for j in plan["jobs"]] == [
        ("shot-01", "submit"), ("shot-02", "wait"), ("shot-03", "wait"), ("shot-04", "wait"),
    ], "jobs come in dependency order: shot-04 is written before shot-03 in the manifest"
    assert plan["jobs"][3]["reason"].startswith("waits for shot-03")
    assert plan["summary"]["billable"] == 4, "what it pays if everything upstream changes"

    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 4
    order = [(e["event"], e["job"]) for e in json_events(result.output) if e["event"] in ("submit", "downloaded")]
    assert order == [(kind, f"shot-0{n}") for n in range(1, 5) for kind in ("submit", "downloaded")]
    assert prompts_created(sim_env) == ["A fox wakes up in a forest", "The fox, scene 02", "The fox, scene 03", "The fox, scene 04"]
    spend = json.loads(cli(["spend", "--json", manifest]).output)["spent"]
    assert (spend["creates"], spend["unpriced"]) == (4, 0), "a shot started mid-run was priced before its create"


def test_each_shot_is_sent_exactly_the_last_frame_of_the_shot_before(tmp_path, sim_env):
    manifest = write_chain(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    renders = tmp_path / "renders"
    for n in (2, 3, 4):
        sent = sent_image(sim_env, f"The fox, scene 0{n}")
        before = renders / f"shot-0{n - 1}.mp4"
        assert sent == media.extract_frame(before), f"shot-0{n} was sent the last frame of shot-0{n - 1}"
        marks = media.decode_png(sent)
        assert (marks.width, marks.height) == (640, 360)
        kept = list((renders / "frames").glob(f"shot-0{n - 1}@last.*.png"))
        assert [p.read_bytes() for p in kept] == [sent], "the frame is kept as a PNG beside the outputs"
    # the frames differ: every shot's video is its own
    assert len({sent_image(sim_env, f"The fox, scene 0{n}") for n in (2, 3, 4)}) == 3


def test_nothing_changed_costs_nothing_and_an_edit_upstream_renders_what_is_downstream(tmp_path, sim_env):
    manifest = write_chain(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    calls = api_calls(sim_env)

    again = cli(["run", manifest, *FAST])
    assert again.exit_code == 0, again.output
    assert api_calls(sim_env) == calls, "an unchanged chain costs no call at all"
    assert "4 jobs, 0 to render" in again.output
    assert cli(["plan", "--check", manifest]).exit_code == 0

    manifest.write_text(CHAIN.replace('"The fox, scene {{ n }}"', '"The fox, scene {{ n }}, at dusk"'))
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert [j["action"] for j in plan["jobs"]] == ["skip", "resubmit", "wait", "wait"]
    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert prompts_created(sim_env)[4:] == ["The fox, scene 02, at dusk", "The fox, scene 03", "The fox, scene 04"]
    assert creates(sim_env) == 7, "shot-01 is not rendered again; 02, 03 and 04 are"
    assert sent_image_last(sim_env, "The fox, scene 03") == media.extract_frame(tmp_path / "renders" / "shot-02.mp4")

    # undoing the edit: shot-02 gets its first video back (cached), and so do 03 and 04: their
    # frames were kept, so the plan knows it and bills nothing
    manifest.write_text(CHAIN)
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert [j["action"] for j in plan["jobs"]] == ["skip", "download", "download", "download"]
    assert plan["summary"]["billable"] == 0
    assert cli(["run", "--max-cost", "0", manifest, *FAST]).exit_code == 0
    assert creates(sim_env) == 7, "the earlier frames give the earlier keys: already rendered, nothing to pay"


def test_forcing_a_source_renders_what_is_downstream_in_the_same_run(tmp_path, sim_env):
    # a forced render of shot-01 is a new video, so a new frame for shot-02: the run that forces
    # it renders what follows too, and leaves the chain up to date (it left 02-04 stale, for the
    # next run to find)
    manifest = write_chain(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    plan = json.loads(cli(["plan", "--json", "--force", "shot-01", manifest]).output)
    assert [j["action"] for j in plan["jobs"]] == ["resubmit", "wait", "wait", "wait"]
    forced = cli(["run", "--force", "shot-01", manifest, *FAST])
    assert forced.exit_code == 0, forced.output
    assert creates(sim_env) == 8, forced.output
    assert sent_image_last(sim_env, "The fox, scene 02") == media.extract_frame(tmp_path / "renders" / "shot-01.mp4")
    assert cli(["plan", "--check", manifest]).exit_code == 0, cli(["plan", manifest]).output


def test_a_source_downloaded_again_bills_nothing_downstream(tmp_path, sim_env):
    # shot-01's video deleted: the state gives it back without a render, and the frames kept
    # from that video say shots 02-04 are unchanged, so the plan bills nothing and a cap passes
    manifest = write_chain(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    renders = tmp_path / "renders"
    (renders / "shot-01.mp4").unlink()
    plan = cli(["plan", manifest])
    assert plan.exit_code == 0, plan.output
    assert "Nothing to pay for." in plan.output and "wait" not in plan.output, plan.output
    listed = json.loads(cli(["plan", "--json", manifest]).output)
    assert [j["action"] for j in listed["jobs"]] == ["download", "skip", "skip", "skip"]
    assert (listed["summary"]["billable"], listed["summary"]["cost"]["total"]) == (0, "0")
    assert listed["summary"]["cost"]["upper_bound"] is False
    result = cli(["run", "--max-cost", "0.10", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 4, "nothing rendered again"

    # with its frame gone too, what shot-02 will be is known only once the video is back: counted
    # as a render, and the plan says the total is at most that
    (renders / "shot-01.mp4").unlink()
    for frame in (renders / "frames").glob("shot-01@*.png"):
        frame.unlink()
    plan = cli(["plan", manifest])
    assert "wait      shot-02" in plan.output and "skip      shot-03" not in plan.output
    assert "Total: up to 0.84 USD" in plan.output, plan.output
    assert json.loads(cli(["plan", "--json", manifest]).output)["summary"]["cost"]["upper_bound"] is True
    refused = cli(["run", "--max-cost", "0.10", manifest, *FAST])
    assert refused.exit_code == 2
    assert "up to 0.84 USD" in refused.output and "chained shots that wait" in refused.output, refused.output
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert creates(sim_env) == 4, "the frame taken again is the same: nothing was paid"


def sent_image_last(sim, prompt: str) -> bytes:
    """The image of the latest task created with ``prompt``."""
    task = max((t for t in sim.sim.tasks.all_tasks() if t.request.get("prompt") == prompt), key=lambda t: t.created_at)
    return images.decode_data_url(task.request["first_frame_image"])[1]


def test_status_and_gc_know_a_chained_shot_by_its_frame(tmp_path, sim_env):
    manifest = write_chain(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    doc = json.loads(cli(["status", "--json", manifest]).output)
    assert {j["name"]: j["state"] for j in doc["jobs"]} == dict.fromkeys(["shot-01", "shot-02", "shot-04", "shot-03"], "done")
    gc = cli(["gc", "-n", manifest])
    assert gc.exit_code == 0 and "would drop 0 orphans" in gc.output, gc.output


def test_a_frame_at_a_time_and_the_first_frame(tmp_path, sim_env):
    text = CHAIN.replace('"frame:shot-{{ prev }}"', '"frame:shot-{{ prev }}@1.0s"').replace('"frame:shot-02"', '"frame:shot-02@first"')
    manifest = write_chain(tmp_path, text)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    renders = tmp_path / "renders"
    assert sent_image(sim_env, "The fox, scene 02") == media.extract_frame(renders / "shot-01.mp4", 1.0)
    assert sent_image(sim_env, "The fox, scene 03") == media.extract_frame(renders / "shot-02.mp4", last=False)


# --- failures upstream ----------------------------------------------------------------------------


def test_a_failed_source_leaves_its_dependents_unstarted_with_the_reason(tmp_path, sim_env):
    manifest = write_chain(tmp_path, CHAIN.replace('"The fox, scene {{ n }}"', '"The fox, scene {{ n }} sim-fail"'))
    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 1, result.output
    assert creates(sim_env) == 2, "shot-01 and shot-02 were created; 03 and 04 never"
    blocked = {e["job"]: e["message"] for e in json_events(result.output) if e["event"] == "blocked"}
    assert set(blocked) == {"shot-03", "shot-04"}
    assert "shot-02 failed" in blocked["shot-03"]
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    actions = {j["name"]: (j["action"], j["reason"]) for j in plan["jobs"]}
    assert actions["shot-03"][0] == "blocked" and "shot-02 failed" in actions["shot-03"][1]
    assert actions["shot-04"][0] == "blocked" and "shot-03 cannot start" in actions["shot-04"][1]
    assert plan["summary"]["billable"] == 0
    calls = api_calls(sim_env)
    assert cli(["run", manifest, *FAST]).exit_code == 1
    assert api_calls(sim_env) == calls, "a blocked chain creates nothing"


# --- manifest errors: exit 2 before any call -----------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('"frame:shot-02"', '"frame:shot-04"'), ["job shot-04", "cycle: shot-04 -> shot-03 -> shot-04"]),
        (lambda t: t.replace('"frame:shot-02"', '"frame:shot-03"'), ["shot-03 -> shot-03"]),
        (lambda t: t.replace('"frame:shot-02"', '"frame:shot-2"'), ["job shot-03", "frame:shot-2@last names no job", "did you mean shot-02"]),
        (lambda t: t.replace('"frame:shot-02"', '"frame:shot-02@soon"'), ["job shot-03", "frame:shot-02@soon@last names no job"]),
    ],
    ids=["cycle", "self", "unknown", "bad-position"],
)
def test_cycles_and_unknown_jobs_exit_2_before_any_call(tmp_path, sim_env, edit, expected):
    manifest = write_chain(tmp_path, edit(CHAIN))
    for command in (["validate", manifest], ["plan", manifest], ["run", manifest, *FAST]):
        result = cli(command)
        assert result.exit_code == 2, result.output
        for text in expected:
            assert text in result.output
        assert "Traceback" not in result.output
    assert api_calls(sim_env) == 0
    assert not (tmp_path / ".vidbatch").exists() and not (tmp_path / "renders").exists()


def small_clips(client: FakeClient, size: tuple[int, int] = (320, 180)) -> FakeClient:
    """Downloads write a real, playable clip of ``size`` (MiniMax never renders one so small)."""

    def clip(fid, dest):
        media.make_clip(dest.with_suffix(".src.mp4"), seconds=0.5, size=size, label=str(fid))
        data = dest.with_suffix(".src.mp4").read_bytes()
        dest.with_suffix(".src.mp4").unlink()
        return write_video(dest, data)

    client.download = lambda fid, dest: clip(fid, dest)  # type: ignore[method-assign]
    return client


def test_a_frame_that_breaks_the_image_rules_fails_its_job_locally_then_exits_2_before_any_call(tmp_path, sim_env):
    manifest = write_chain(tmp_path)
    ws = project.load([manifest])
    client = small_clips(FakeClient())
    events = []
    result = ws.run(client, RunOptions(rpm=60000, poll_interval=0), on_event=events.append)
    assert client.count("create") == 1, "only shot-01 was created; shot-02's frame is 320x180"
    assert result.exit_code == 1 and "shot-02" in result.failed
    failed = next(e for e in events if e.kind == "failed" and e.job == "shot-02")
    assert "last frame of shot-01" in failed.message and "short side must be over 300 px" in failed.message
    assert {"shot-03", "shot-04"} <= set(result.unfinished)

    # now the frame is known before any call: plan and run refuse with exit 2, naming the jobs
    for command in (["plan", manifest], ["run", manifest, *FAST]):
        out = cli(command)
        assert out.exit_code == 2, out.output
        assert "job shot-02" in out.output and "field first_frame_image" in out.output and "shot-01" in out.output
        assert "320x180" in out.output
    assert api_calls(sim_env) == 0
    with pytest.raises(ManifestError):
        chain.plan(ws.manifests, Store(ws.state_dir))


def test_a_time_past_the_end_of_the_source_is_refused_naming_both_jobs(tmp_path, sim_env):
    manifest = write_chain(tmp_path, CHAIN.replace('"frame:shot-{{ prev }}"', '"frame:shot-{{ prev }}@99"'))
    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 1 and creates(sim_env) == 1
    failed = [e for e in json_events(result.output) if e["event"] == "failed"]
    assert [e["job"] for e in failed] == ["shot-02"] and "frame at 99s of shot-01" in failed[0]["message"]
    calls = api_calls(sim_env)
    out = cli(["plan", manifest])
    assert out.exit_code == 2 and "job shot-02" in out.output and "has no frame at 99" in out.output
    assert api_calls(sim_env) == calls


# --- pure logic ------------------------------------------------------------------------------------


def test_frame_references_parse():
    assert frames.parse("frame:shot-02") == frames.FrameSpec("shot-02")
    assert frames.parse("frame:shot-02@last").text == "frame:shot-02@last"
    assert frames.parse("frame:shot-02@first") == frames.FrameSpec("shot-02", first=True)
    assert frames.parse("frame:shot-02@2.5s") == frames.FrameSpec("shot-02", at=2.5)
    assert frames.parse("frame:shot-02@.5").position == "0.5s"
    assert frames.parse("frame:take@2@last") == frames.FrameSpec("take@2"), "an explicit position keeps an @ in a name"
    assert frames.parse("frame:a@soon") == frames.FrameSpec("a@soon")
    with pytest.raises(ValueError):
        frames.parse("frame:")
    with pytest.raises(ValueError):
        frames.parse("frame:@last")


def test_the_graph_names_each_cycle_once_and_orders_sources_first():
    edges = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d"], "e": ["a"]}
    assert frames.cycles(edges) == [["a", "b", "c", "a"], ["d", "d"]]
    assert frames.cycles({"b": ["a"], "c": ["b"]}) == []
    assert frames.order(["d", "c", "b", "a", "x"], {"b": ["a"], "c": ["b"], "d": ["c"]}) == ["a", "b", "c", "d", "x"]
    long = {f"s{i}": [f"s{i - 1}"] for i in range(1, 5000)}
    assert frames.order([f"s{i}" for i in reversed(range(5000))], long)[:3] == ["s0", "s1", "s2"], "no recursion limit"


def test_a_loaded_chained_job_is_unresolved_and_its_image_says_where_it_comes_from(tmp_path):
    m = load_manifest(write_chain(tmp_path))
    job = m.job("shot-03")
    assert job is not None and job.unresolved and job.frame_sources() == [("first_frame_image", frames.FrameSpec("shot-02"))]
    assert job.display_request()["first_frame_image"] == {"frame": "frame:shot-02@last"}
    first = m.job("shot-01")
    assert first is not None and not first.unresolved
    plan = chain.plan([m], None)
    assert [(p.job.name, p.action) for p in plan.jobs] == [("shot-01", Action.SUBMIT), ("shot-02", Action.WAIT), ("shot-03", Action.WAIT), ("shot-04", Action.WAIT)]


# --- takes and picks -------------------------------------------------------------------------------

TAKES = CHAIN.replace('matrix = { n = ["02"], prev = ["01"] }', 'matrix = { n = ["02"], prev = ["01"] }\ntakes = 2')


def test_a_shot_of_several_takes_waits_for_a_pick_and_re_picking_renders_downstream_only(tmp_path, sim_env):
    manifest = write_chain(tmp_path, TAKES)
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    reasons = {j["name"]: (j["action"], j["reason"]) for j in plan["jobs"]}
    assert reasons["shot-03"][0] == "blocked" and "shot-02 has 2 takes and no pick" in reasons["shot-03"][1]
    assert "vidbatch pick chain.toml shot-02 TAKE" in reasons["shot-03"][1]
    assert reasons["shot-04"][0] == "blocked" and "shot-03 cannot start" in reasons["shot-04"][1]

    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 1 and creates(sim_env) == 3, "shot-01 and the two takes of shot-02"
    blocked = {e["job"]: e["message"] for e in json_events(result.output) if e["event"] == "blocked"}
    assert set(blocked) == {"shot-03", "shot-04"} and "no pick" in blocked["shot-03"]

    renders = tmp_path / "renders"
    assert cli(["pick", manifest, "shot-02", "1"]).exit_code == 0
    assert cli(["run", manifest, *FAST]).exit_code == 0 and creates(sim_env) == 5
    assert sent_image_last(sim_env, "The fox, scene 03") == media.extract_frame(renders / "shot-02.mp4")
    first_cut = {n: (renders / f"shot-0{n}.mp4").read_bytes() for n in (3, 4)}

    assert cli(["pick", manifest, "shot-02", "2"]).exit_code == 0
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert [(j["name"], j["action"]) for j in plan["jobs"] if j["action"] != "skip"] == [("shot-03", "resubmit"), ("shot-04", "wait")]
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert prompts_created(sim_env)[5:] == ["The fox, scene 03", "The fox, scene 04"], "re-picking shot-02 renders 03 and 04 only"
    assert sent_image_last(sim_env, "The fox, scene 03") == media.extract_frame(renders / "shot-02.take2.mp4")

    assert cli(["pick", manifest, "shot-02", "1"]).exit_code == 0
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert creates(sim_env) == 7, "picking take 1 again: 03 and 04 get their earlier renders back, unpaid"
    assert {n: (renders / f"shot-0{n}.mp4").read_bytes() for n in (3, 4)} == first_cut


def test_a_pick_left_from_when_the_shot_had_more_takes_does_not_block_its_only_take(tmp_path, sim_env):
    manifest = write_chain(tmp_path, TAKES.replace("takes = 2", "takes = 1"))
    (tmp_path / "chain.picks.toml").write_text('["shot-02"]\npick = 2\n')  # picked while it had 2 takes
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    actions = {j["name"]: (j["action"], j["reason"]) for j in plan["jobs"]}
    assert actions["shot-03"][0] == "wait", "a shot with one take needs no pick: " + actions["shot-03"][1]


def test_a_pick_of_a_take_the_shot_no_longer_has_is_named_in_the_reason(tmp_path, sim_env):
    manifest = write_chain(tmp_path, TAKES.replace("takes = 2", "takes = 3"))
    (tmp_path / "chain.picks.toml").write_text('["shot-02"]\npick = 4\n')  # picked while it had 4 takes
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    action, reason = {j["name"]: (j["action"], j["reason"]) for j in plan["jobs"]}["shot-03"]
    assert action == "blocked" and "picked take 4" in reason and "takes 1-3" in reason, reason
    assert "vidbatch pick chain.toml shot-02 TAKE" in reason


def test_a_pick_holds_for_the_render_it_was_made_on_not_for_a_new_render_of_its_take(tmp_path, sim_env):
    manifest = write_chain(tmp_path, TAKES)
    assert cli(["run", manifest, *FAST]).exit_code == 1 and creates(sim_env) == 3, "shot-03 waits for a pick"
    assert cli(["pick", manifest, "shot-02", "2"]).exit_code == 0
    assert 'video = "sha256:' in (tmp_path / "chain.picks.toml").read_text(), "the pick names the video it was made on"
    assert cli(["run", manifest, *FAST]).exit_code == 0 and creates(sim_env) == 5

    # shot-02 edited: its take 2 renders again, and nobody has seen that render
    manifest.write_text(TAKES.replace('"The fox, scene {{ n }}"', '"The fox, scene {{ n }}, at dusk"'))
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    action, reason = {j["name"]: (j["action"], j["reason"]) for j in plan["jobs"]}["shot-03"]
    assert action == "blocked", reason
    assert "shot-02's picked take 2 renders again (its request changed since it was picked)" in reason
    assert "pick again with `vidbatch pick chain.toml shot-02 TAKE` (or `vidbatch review`)" in reason
    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 1, result.output
    assert prompts_created(sim_env)[5:] == ["The fox, scene 02, at dusk"] * 2, "the two takes of shot-02, not shot-03 from an unseen take"
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    action, reason = {j["name"]: (j["action"], j["reason"]) for j in plan["jobs"]}["shot-03"]
    assert action == "blocked" and "shot-02's picked take 2 was rendered again since it was picked" in reason, reason

    assert cli(["pick", manifest, "shot-02", "2"]).exit_code == 0  # seen now, and picked again
    assert cli(["run", manifest, *FAST]).exit_code == 0 and creates(sim_env) == 9
    assert sent_image_last(sim_env, "The fox, scene 03") == media.extract_frame(tmp_path / "renders" / "shot-02.take2.mp4")


def test_a_pick_written_without_its_video_holds_for_any_render_as_before(tmp_path, sim_env):
    manifest = write_chain(tmp_path, TAKES)
    (tmp_path / "chain.picks.toml").write_text('["shot-02"]\npick = 2\n')  # an older picks file
    assert cli(["run", manifest, *FAST]).exit_code == 0 and creates(sim_env) == 5
    manifest.write_text(TAKES.replace('"The fox, scene {{ n }}"', '"The fox, scene {{ n }}, at dusk"'))
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert {j["name"]: j["action"] for j in plan["jobs"]}["shot-03"] == "wait"


def test_a_one_take_shot_needs_no_pick_even_when_its_take_renders_again(tmp_path, sim_env):
    manifest = write_chain(tmp_path)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert cli(["pick", manifest, "shot-02", "1"]).exit_code == 0  # allowed, and changes nothing
    manifest.write_text(CHAIN.replace('"The fox, scene {{ n }}"', '"The fox, scene {{ n }}, at dusk"'))
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert {j["name"]: j["action"] for j in plan["jobs"]}["shot-03"] == "wait"


# --- watch mode --------------------------------------------------------------------------------------


def test_watch_renders_a_chain_in_order_and_joins_its_cut_again_after_an_edit(tmp_path):
    from vidbatch.sim import SimConfig, running_simulator

    from .test_watch import Watch

    folder = tmp_path / "shots"
    folder.mkdir()
    manifest = write_chain(folder, CHAIN + '\n[[sequences]]\nname = "film"\nshots = ["shot-01", "shot-02", "shot-03", "shot-04"]\n')
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        w = Watch(folder, server)
        try:
            w.wait_for(lambda: w.of("joined"), "the cut to be joined")
            assert prompts_created(server) == ["A fox wakes up in a forest", "The fox, scene 02", "The fox, scene 03", "The fox, scene 04"]
            renders = folder / "renders"
            assert abs(media.probe(renders / "film.mp4").duration - 8.0) < 1e-6
            assert sent_image(server, "The fox, scene 04") == media.extract_frame(renders / "shot-03.mp4")

            manifest.write_text(manifest.read_text().replace("The fox, scene 04", "The fox, scene 04, at dusk"))
            w.wait_for(lambda: len(w.of("joined")) >= 2, "the cut to be joined again")
            assert prompts_created(server)[4:] == ["The fox, scene 04, at dusk"]
            assert media.extract_frame(renders / "film.mp4", 6.0) == media.extract_frame(renders / "shot-04.mp4", last=False)
        finally:
            w.close()


def test_an_account_stop_mid_chain_leaves_the_rest_unstarted_with_the_reason(tmp_path):
    from vidbatch.errors import CallInfo, CredentialsError

    manifest = write_chain(tmp_path)
    client = small_clips(FakeClient(), size=(640, 360))
    client.script("create", "task-1", CredentialsError("invalid api key", CallInfo("create", 401, 1004)))
    events = []
    result = project.load([manifest]).run(client, RunOptions(rpm=60000, poll_interval=0), on_event=events.append)
    assert result.exit_code == 3 and client.count("create") == 2, "shot-01 created; shot-02's create refused; nothing after"
    blocked = {e.job: e.message for e in events if e.kind == "blocked"}
    assert set(blocked) == {"shot-03", "shot-04"}
    assert "waits for shot-02, which did not finish in this run" in blocked["shot-03"]
    assert {"shot-02", "shot-03", "shot-04"} <= set(result.unfinished)
    assert len(client.requests) == 2 and images.decode_data_url(client.requests[1]["first_frame_image"])[1] == media.extract_frame(tmp_path / "renders" / "shot-01.mp4")
