"""Issue 10: plans say what runs do, and no command destroys or rewrites a paid render.
Through the real CLI, against the simulator over HTTP, with a real SQLite state."""

from __future__ import annotations

import json
from pathlib import Path

from vidbatch import mp4

from .helpers import cli, creates, json_events

FAST = ["--poll-interval", "0", "--rpm", "60000"]

# Three jobs with one request: one render, copied. (A matrix key named `take` would make three
# takes, three renders: issue 14, tests/test_takes.py.)
TAKES = """
output_dir = "renders"
[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "hero-copy{{ copy }}"
prompt = "A hero walks into the light"
matrix = { copy = [1, 2, 3] }
"""


def test_identical_requests_plan_one_submit_and_reuse_after(tmp_path: Path, sim_env) -> None:
    manifest = tmp_path / "takes.toml"
    manifest.write_text(TAKES)
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    actions = {j["name"]: (j["action"], j["after"]) for j in plan["jobs"]}
    assert actions == {
        "hero-copy1": ("submit", None),
        "hero-copy2": ("reuse", "hero-copy1"),
        "hero-copy3": ("reuse", "hero-copy1"),
    }
    assert plan["summary"]["billable"] == 1
    text = cli(["plan", manifest]).output
    assert "1 billable render" in text and "identical request to hero-copy1" in text

    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 1, "the plan promised one create"
    videos = {p.name: p.read_bytes() for p in (tmp_path / "renders").glob("*.mp4")}
    assert sorted(videos) == ["hero-copy1.mp4", "hero-copy2.mp4", "hero-copy3.mp4"]
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


# --- issue 10 §2: a task or file MiniMax no longer has is "gone", not a manifest error ----------


def _fresh_sim_env(monkeypatch):
    """Point vidbatch at a new simulator that knows none of the earlier one's tasks or files
    (as MiniMax after they expire, or another account's key)."""
    from contextlib import ExitStack

    from vidbatch.sim import SimConfig, running_simulator

    from .conftest import TEST_KEY

    stack = ExitStack()
    server = stack.enter_context(running_simulator(SimConfig(key=TEST_KEY)))
    monkeypatch.setenv("MINIMAX_API_HOST", server.base_url)
    return stack, server


def test_an_expired_file_is_gone_not_a_manifest_error(tmp_path: Path, sim_env, monkeypatch) -> None:
    manifest = _manifest(tmp_path / "shots.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    (tmp_path / "renders" / "b.mp4").unlink()
    stack, other = _fresh_sim_env(monkeypatch)
    with stack:
        result = cli(["run", "--json", manifest, *FAST])
        assert result.exit_code == 1, result.output
        assert "fix the manifest" not in result.output
        assert "no longer has" in result.output and "--force b" in result.output
        assert creates(other) == 0, "a gone render is never paid for silently"
        status = json.loads(cli(["status", "--json", manifest]).output)
        assert {j["name"]: j["state"] for j in status["jobs"]} == {"a": "done", "b": "gone", "c": "done"}
        plan = json.loads(cli(["plan", "--json", manifest]).output)
        b = next(j for j in plan["jobs"] if j["name"] == "b")
        assert b["action"] == "gone" and "--force b" in b["reason"] and "no longer has" in b["reason"]
        assert plan["summary"]["billable"] == 0
        text_plan = cli(["plan", manifest])
        assert text_plan.exit_code == 0 and "gone" in text_plan.output, text_plan.output
        text_status = cli(["status", manifest])
        assert text_status.exit_code == 0 and "1 gone" in text_status.output and "no longer has" in text_status.output, text_status.output
        text_run = cli(["run", manifest, *FAST])
        assert text_run.exit_code == 1 and "1 gone: b" in text_run.output and "--force NAME" in text_run.output, text_run.output
        assert "all 3 jobs done" not in text_run.output
        report = cli(["report", manifest])
        assert report.exit_code == 0, report.output
        html = (tmp_path / "renders" / "report.html").read_text()
        assert 'data-state="gone"' in html
        forced = cli(["run", manifest, "--force", "b", *FAST])
        assert forced.exit_code == 0, forced.output
        assert creates(other) == 1
        assert (tmp_path / "renders" / "b.mp4").exists()


def test_a_task_unknown_to_the_api_is_gone_not_failed(tmp_path: Path, sim_env) -> None:
    from vidbatch import project
    from vidbatch.state import Store

    manifest = _manifest(tmp_path / "shots.toml", {"a": "A lighthouse at dusk"})
    job = project.load([manifest]).jobs[0]
    store = Store(tmp_path / ".vidbatch")
    store.record_seen(job.key, job.display_request(), model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt="A lighthouse at dusk", name="a", manifest=str(manifest))
    store.record_intent(job.key, name="a")
    store.record_submitted(job.key, "task-of-another-account", name="a")  # as if created with another key
    store.close()
    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 1, result.output
    assert "fix the manifest" not in result.output and "no longer has task task-of-another-account" in result.output
    status = json.loads(cli(["status", "--json", manifest]).output)
    assert status["jobs"][0]["state"] == "gone"
    assert creates(sim_env) == 0


# --- issue 10 §3: which video each output holds -------------------------------------------------


def test_force_of_one_take_never_rewrites_another_takes_video(tmp_path: Path, sim_env) -> None:
    manifest = tmp_path / "takes.toml"
    manifest.write_text(TAKES)
    renders = tmp_path / "renders"
    assert cli(["run", manifest, *FAST]).exit_code == 0
    take1 = (renders / "hero-copy1.mp4").read_bytes()
    assert cli(["run", manifest, "--force", "hero-copy2", *FAST]).exit_code == 0
    take2 = (renders / "hero-copy2.mp4").read_bytes()
    assert take2 != take1, "the forced take is a new render"
    calls = creates(sim_env)

    (renders / "hero-copy1.mp4").unlink()
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    one = next(j for j in plan["jobs"] if j["name"] == "hero-copy1")
    assert one["action"] == "reuse" and "video it held" in one["reason"], one
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert (renders / "hero-copy1.mp4").read_bytes() == take1, "take 1 got take 2's video"

    # no verified copy left: the video it held is downloaded again by its own file id
    (renders / "hero-copy1.mp4").unlink()
    (renders / "hero-copy3.mp4").unlink()
    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert (renders / "hero-copy1.mp4").read_bytes() == take1
    assert (renders / "hero-copy3.mp4").read_bytes() == take1
    assert (renders / "hero-copy2.mp4").read_bytes() == take2
    assert creates(sim_env) == calls, "restoring a video never renders"
    assert json.loads(cli(["plan", "--json", manifest]).output)["summary"]["up_to_date"]


def test_undo_status_and_report_say_which_version_the_output_holds(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "shots.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, {**SHOTS, "b": "A fox in the rain"})
    assert cli(["run", manifest, *FAST]).exit_code == 0
    _manifest(manifest, SHOTS)  # revert: b's own render is done, but b.mp4 holds the rain
    status = json.loads(cli(["status", "--json", manifest]).output)
    b = next(j for j in status["jobs"] if j["name"] == "b")
    assert b["state"] == "outdated" and b["output_prompt"] == "A fox in the rain", b
    text = cli(["status", manifest]).output
    assert "1 outdated" in text and "holds another version (rendered for: A fox in the rain)" in text, text
    assert cli(["report", manifest]).exit_code == 0
    html = (tmp_path / "renders" / "report.html").read_text()
    card = html[html.index('id="job-2"'):html.index('id="job-3"')]
    assert 'data-state="outdated"' in card
    assert "video rendered from" in card and "A fox in the rain" in card
    assert cli(["run", manifest, *FAST]).exit_code == 0
    status = json.loads(cli(["status", "--json", manifest]).output)
    assert {j["state"] for j in status["jobs"]} == {"done"}


# --- issue 11 items 2 and 3: outputs that say which render they hold ----------------------------


def _db_files(state: Path) -> list[Path]:
    return [p for p in state.glob("state.db*")]


def test_a_lost_state_pays_for_nothing_finished(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "shots.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    index = json.loads((tmp_path / "renders" / ".vidbatch-index.json").read_text())
    assert sorted(index["files"]) == ["a.mp4", "b.mp4", "c.mp4"]
    assert all(e["task_id"] and e["file_id"] and e["sha256"] for e in index["files"].values())
    for p in _db_files(tmp_path / ".vidbatch"):
        p.unlink()
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert {j["action"] for j in plan["jobs"]} == {"skip"} and plan["summary"]["billable"] == 0
    calls = creates(sim_env)
    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == calls, "a lost state re-created finished work"
    status = json.loads(cli(["status", "--json", manifest]).output)
    assert {j["state"] for j in status["jobs"]} == {"done"}
    # a changed file is not adopted: it is not the video the index names
    (tmp_path / "renders" / "c.mp4").write_bytes(b"not the video")
    for p in _db_files(tmp_path / ".vidbatch"):
        p.unlink()
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert {j["name"]: j["action"] for j in plan["jobs"]} == {"a": "skip", "b": "skip", "c": "submit"}


def test_a_corrupt_state_moved_aside_pays_for_nothing_finished(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "shots.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    state = tmp_path / ".vidbatch"
    for p in _db_files(state):
        p.unlink()
    (state / "state.db").write_bytes(b"garbage" * 100)
    assert cli(["run", manifest, *FAST]).exit_code != 0
    (state / "state.db").rename(state / "state.db.broken")  # the advice: move it aside
    calls = creates(sim_env)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert creates(sim_env) == calls


def test_two_state_folders_over_one_output_folder_never_pay_twice(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "shots.toml", SHOTS)
    assert cli(["run", manifest, "--state", tmp_path / "one", *FAST]).exit_code == 0
    calls = creates(sim_env)
    result = cli(["run", manifest, "--state", tmp_path / "two", *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == calls, "the second state paid again for the first one's videos"
    index = json.loads((tmp_path / "renders" / ".vidbatch-index.json").read_text())
    assert {Path(e["state"]).name for e in index["files"].values()} == {"one"}, "adopted entries keep the state that rendered them"
    # and back: the first state still sees its own videos as done, no download loop
    again = cli(["run", "--json", manifest, "--state", tmp_path / "one", *FAST])
    assert again.exit_code == 0 and creates(sim_env) == calls
    assert not [e for e in json_events(again.output) if e["event"] in ("downloaded", "reused")]


# --- issue 10 §5: --json events carry their counts and error parts ------------------------------


def test_json_finish_counts_and_failed_code_and_trace_id(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "shots.toml", {"ok": "A lighthouse at dusk", "bad": "sim-fail a fox"})
    result = cli(["run", "--json", manifest, *FAST])
    assert result.exit_code == 1
    events = json_events(result.output)
    finish = next(e for e in events if e["event"] == "finish")
    assert (finish["done"], finish["failed"], finish["uncertain"], finish["unfinished"]) == (1, 1, 0, 0)
    failed = next(e for e in events if e["event"] == "failed")
    assert "code" in failed and failed["trace_id"], failed
    again = json_events(cli(["run", "--json", manifest, *FAST]).output)
    previously = next(e for e in again if e["event"] == "failed")
    assert previously["trace_id"] == failed["trace_id"]


def test_outputs_recorded_before_the_index_get_their_entries_on_the_next_run(tmp_path: Path, sim_env) -> None:
    manifest = _manifest(tmp_path / "shots.toml", SHOTS)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    index = tmp_path / "renders" / ".vidbatch-index.json"
    index.unlink()  # as a state written by an older vidbatch: no index yet
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert sorted(json.loads(index.read_text())["files"]) == ["a.mp4", "b.mp4", "c.mp4"]
    for p in _db_files(tmp_path / ".vidbatch"):
        p.unlink()
    calls = creates(sim_env)
    assert cli(["run", manifest, *FAST]).exit_code == 0
    assert creates(sim_env) == calls
