"""plan / run / status / gc through the real CLI, against the simulator over real HTTP, with a real
SQLite state file. Latency 0 and --poll-interval 0 keep them fast without depending on timing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from vidbatch import mp4
from vidbatch.state import Store

from .conftest import TEST_KEY
from .helpers import all_bytes_under, api_calls, cli, creates, json_events, t2v_manifest, write_png

FAST = ["--poll-interval", "0", "--rpm", "60000"]
PROMPTS = {
    "fox-spring": "A red fox in spring",
    "fox-winter": "A red fox in winter [Truck left]",
    "owl": "An owl at dusk [Push in]",
}


@pytest.fixture
def project(tmp_path):
    path = tmp_path / "shots.toml"
    path.write_text(t2v_manifest(PROMPTS))
    return path


def run_ok(manifest, *extra):
    result = cli(["run", manifest, *FAST, *extra])
    assert result.exit_code == 0, result.output
    return result


def outputs_of(manifest: Path) -> dict[str, Path]:
    return {p.stem: p for p in (manifest.parent / "renders").glob("*.mp4")}


def test_first_run_renders_every_job_and_records_it(project, sim_env):
    result = run_ok(project)
    assert creates(sim_env) == 3
    outs = outputs_of(project)
    assert sorted(outs) == sorted(PROMPTS)
    for name, path in outs.items():
        assert mp4.check_mp4(path) == []
        meta = mp4.read_sim_metadata(path)
        assert meta["prompt"] == PROMPTS[name], "each output must hold its own job's render"
    store = Store(project.parent / ".vidbatch")
    assert store.counts() == {"done": 3}
    assert "all 3 jobs done" in result.output


def test_second_run_of_finished_manifest_makes_zero_api_calls(project, sim_env):
    run_ok(project)
    before = api_calls(sim_env)
    result = run_ok(project)
    assert api_calls(sim_env) == before
    assert "0 renders created" in result.output
    check = cli(["plan", "--check", project])
    assert check.exit_code == 0


def test_editing_one_prompt_makes_exactly_one_create(project, sim_env):
    run_ok(project)
    project.write_text(project.read_text().replace("An owl at dusk", "An owl at midnight"))
    plan = json.loads(cli(["plan", "--json", project]).output)
    actions = {j["name"]: j["action"] for j in plan["jobs"]}
    assert actions == {"fox-spring": "skip", "fox-winter": "skip", "owl": "resubmit"}
    owl = next(j for j in plan["jobs"] if j["name"] == "owl")
    assert owl["changes"] == [{"field": "prompt", "before": "An owl at dusk [Push in]", "after": "An owl at midnight [Push in]"}]
    assert plan["summary"]["billable"] == 1
    assert plan["orphans"] == [], "an edited job's earlier render is its cache, not an orphan"
    assert cli(["plan", "--check", project]).exit_code == 1
    before = creates(sim_env)
    run_ok(project)
    assert creates(sim_env) == before + 1
    assert mp4.read_sim_metadata(outputs_of(project)["owl"])["prompt"] == "An owl at midnight [Push in]"


def test_comments_reordering_explicit_defaults_and_renames_make_no_create(project, sim_env):
    run_ok(project)
    before = creates(sim_env)
    # reorder jobs, add comments and explicit API defaults, rename one job, add an unused variable
    jobs = list(PROMPTS.items())[::-1]
    renamed = {("owl-renamed" if n == "owl" else n): p for n, p in jobs}
    text = t2v_manifest(renamed, extra_defaults="duration = 6\nprompt_optimizer = true\nresolution = \"768P\"\n", header="# a comment\n[vars]\nunused = \"x\"\n\n")
    project.write_text(text)
    plan = json.loads(cli(["plan", "--json", project]).output)
    actions = {j["name"]: j["action"] for j in plan["jobs"]}
    assert actions == {"owl-renamed": "reuse", "fox-winter": "skip", "fox-spring": "skip"}
    assert plan["summary"]["billable"] == 0
    run_ok(project)
    assert creates(sim_env) == before
    assert mp4.read_sim_metadata(outputs_of(project)["owl-renamed"])["prompt"] == PROMPTS["owl"]


def test_identical_requests_in_one_manifest_are_rendered_once(tmp_path, sim_env):
    manifest = tmp_path / "twins.toml"
    manifest.write_text(t2v_manifest({"a": "Same shot", "b": "Same shot", "c": "Other shot"}))
    run_ok(manifest)
    assert creates(sim_env) == 2
    outs = outputs_of(manifest)
    assert outs["a"].read_bytes() == outs["b"].read_bytes()


def test_missing_output_is_downloaded_again_without_a_new_render(project, sim_env):
    run_ok(project)
    outputs_of(project)["owl"].unlink()
    outputs_of(project)["fox-spring"].write_bytes(b"damaged")
    plan = json.loads(cli(["plan", "--json", project]).output)
    assert {j["name"]: j["action"] for j in plan["jobs"]} == {"fox-spring": "download", "fox-winter": "skip", "owl": "download"}
    before = creates(sim_env)
    run_ok(project)
    assert creates(sim_env) == before
    for path in outputs_of(project).values():
        assert mp4.check_mp4(path) == []


def test_transient_faults_are_survived_without_creating_twice(project, sim_env):
    sim = sim_env.sim
    sim.inject("create", "http500", times=2)
    sim.inject("create", "code:1002", times=1)
    sim.inject("create", "code:1013", times=1)
    sim.inject("query", "drop", times=2)
    sim.inject("query", "http503", times=1)
    sim.inject("retrieve", "code:1000", times=1)
    sim.inject("download", "truncate", times=2)
    result = cli(["run", project, *FAST])
    assert result.exit_code == 0, result.output
    assert len(sim.tasks) == 3, "every job created exactly once"
    for name, path in outputs_of(project).items():
        assert mp4.check_mp4(path) == []
        assert mp4.read_sim_metadata(path)["prompt"] == PROMPTS[name]
    assert [p.name for p in (project.parent / "renders").glob(".*")] == [".vidbatch-index.json"], "no staging or partial files left"


@pytest.mark.parametrize("client_retries", [True, False], ids=["client-retries", "runner-pauses"])
def test_rate_limit_slows_down_and_never_fails_the_job(project, sim, client_retries):
    """429s with the simulator's `Retry-After: 1` pause creates for that 1 s (not a 30 s floor),
    put the job back, and never fail it. The client's and the runner's waits are injected, so
    the test does not sleep through them."""
    from vidbatch import project as project_mod
    from vidbatch.client import Client, RetryPolicy
    from vidbatch.plan import plan_jobs
    from vidbatch.runner import RunOptions, Runner

    from .fakes import FakeClock

    sim.sim.inject("create", "http429", times=3)
    ws = project_mod.load([project])
    store = Store(ws.state_dir)
    clock = FakeClock()
    events = []
    retry = RetryPolicy() if client_retries else RetryPolicy(attempts=1)  # 1: every 429 reaches the runner
    with Client(sim.key, sim.base_url, sleep=lambda s: None, retry=retry) as client:
        runner = Runner(store, client, RunOptions(poll_interval=0, rpm=60000), events.append, clock=clock, workers=0)
        result = runner.run(plan_jobs(ws.manifests, store))
    assert result.exit_code == 0, [e.message for e in events]
    assert len(sim.sim.tasks) == 3 and sim.sim.calls["create"] == 6
    assert store.counts() == {"done": 3}
    pauses = [e.data["pause"] for e in events if e.kind == "rate_limited"]
    assert all(p == 1.0 for p in pauses), pauses  # the server's Retry-After, exactly
    if not client_retries:
        assert pauses == [1.0, 1.0, 1.0]
    assert clock.elapsed() < 10


def test_failed_jobs_do_not_stop_others_and_are_retried_only_when_asked(tmp_path, sim_env):
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"good": "A calm lake", "bad": "sim-fail a storm", "flagged": "sim-flag-input a crowd"}))
    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 1
    assert "2 failed" in result.output
    assert (tmp_path / "renders" / "good.mp4").exists()
    status = json.loads(cli(["status", manifest, "--json"]).output)
    states = {j["name"]: (j["state"], j["error_code"]) for j in status["jobs"]}
    assert states["good"] == ("done", None)
    assert states["bad"][0] == "failed"
    assert states["flagged"] == ("failed", 1026)
    calls, tasks = creates(sim_env), len(sim_env.sim.tasks)
    again = cli(["run", manifest, *FAST])
    assert again.exit_code == 1
    assert creates(sim_env) == calls, "failed jobs are not retried without --retry-failed"
    cli(["run", manifest, *FAST, "--retry-failed"])
    assert creates(sim_env) == calls + 2, "both failed jobs are tried again"
    assert len(sim_env.sim.tasks) == tasks + 1, "the flagged prompt is refused again at create: no task"


def test_account_error_stops_creates_but_collects_running_tasks(tmp_path, sim_env):
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({f"shot{i}": f"Shot number {i}" for i in range(4)}))
    sim = sim_env.sim
    sim.inject("create", "code:1008", times=1, after=2)
    result = cli(["run", manifest, *FAST, "--concurrency", "10"])
    assert result.exit_code == 3, result.output
    assert "insufficient balance" in result.output
    done = list((tmp_path / "renders").glob("*.mp4"))
    # creates already on the wire when the 1008 arrived may have gone through; nothing after it
    assert 2 <= len(sim.tasks) <= 3
    assert len(done) == len(sim.tasks), "every task created before the stop is still downloaded"
    assert sim.calls["create"] == len(sim.tasks) + 1, "exactly one create refused and none sent or retried after"
    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0
    assert len(sim.tasks) == 4


def test_uncertain_create_is_reported_and_not_created_again_unless_asked(project, sim_env):
    sim = sim_env.sim
    sim.inject("create", "drop_after_create", times=1)
    result = cli(["run", project, *FAST])
    assert result.exit_code == 1
    assert "1 uncertain" in result.output and "--resubmit-uncertain" in result.output
    assert len(sim.tasks) == 3  # MiniMax did accept it: paid for, but the answer was lost
    plan = json.loads(cli(["plan", "--json", project]).output)
    assert sorted(j["action"] for j in plan["jobs"]) == ["skip", "skip", "uncertain"]
    assert cli(["run", project, *FAST]).exit_code == 1
    assert len(sim.tasks) == 3, "an uncertain job is never re-created silently"
    assert cli(["run", project, *FAST, "--resubmit-uncertain"]).exit_code == 0
    assert len(sim.tasks) == 4


def test_max_renders_refuses_before_any_call(project, sim_env):
    result = cli(["run", project, *FAST, "--max-renders", "2"])
    assert result.exit_code == 2
    assert "3 renders" in result.output and "--max-renders 2" in result.output
    assert api_calls(sim_env) == 0


def test_a_second_run_on_the_same_state_is_refused_with_exit_4(project, sim_env):
    store = Store(project.parent / ".vidbatch")
    with store.run_lock():
        result = cli(["run", project, *FAST])
    assert result.exit_code == 4
    assert "another vidbatch run" in result.output
    assert api_calls(sim_env) == 0


def test_force_rerenders_one_job(project, sim_env):
    run_ok(project)
    before = creates(sim_env)
    run_ok(project, "--force", "owl")
    assert creates(sim_env) == before + 1
    assert cli(["run", project, *FAST, "--force", "nosuch"]).exit_code == 2


def test_expired_download_url_is_refreshed(tmp_path):
    from vidbatch.sim import SimConfig, running_simulator

    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A lighthouse"}))
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        server.sim.inject("download", "expire", times=1)
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
        result = cli(["run", manifest, *FAST], env=env)
        assert result.exit_code == 0, result.output
        assert server.sim.calls["retrieve"] >= 2
    assert mp4.check_mp4(tmp_path / "renders" / "a.mp4") == []


def test_key_never_lands_in_state_outputs_or_output(project, sim_env):
    sim_env.sim.inject("create", "code:2013", times=1)
    sim_env.sim.inject("query", "http500", times=1)
    result = cli(["run", project, *FAST, "--json"])
    status = cli(["status", project, "--json"])
    secret = TEST_KEY.encode()
    assert secret not in result.output.encode() and secret not in status.output.encode()
    assert secret not in all_bytes_under(project.parent / ".vidbatch")
    assert secret not in all_bytes_under(project.parent / "renders")


def test_plan_writes_nothing_and_json_has_the_documented_shape(project):
    out = cli(["plan", "--json", project])
    assert out.exit_code == 0
    assert not (project.parent / ".vidbatch").exists()
    plan = json.loads(out.output)
    assert set(plan) == {"jobs", "orphans", "summary"}
    assert {"name", "action", "reason", "model", "prompt", "output", "key"} <= set(plan["jobs"][0])
    assert plan["summary"]["renders"] == [{"model": "MiniMax-Hailuo-02", "mode": "t2v", "resolution": "768P", "duration": 6, "count": 3}]


def test_json_events_and_status_history(project, sim_env):
    result = cli(["run", project, *FAST, "--json"])
    kinds = [e["event"] for e in json_events(result.output)]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    assert kinds.count("downloaded") == 3
    history = cli(["status", project, "--job", "owl"])
    assert history.exit_code == 0
    for step in ("submit", "submitted", "rendered", "downloaded"):
        assert step in history.output


def test_gc_drops_orphans_and_keeps_files_unless_asked(project, sim_env):
    run_ok(project)
    project.write_text(t2v_manifest({k: v for k, v in PROMPTS.items() if k != "owl"}))
    plan = json.loads(cli(["plan", "--json", project]).output)
    assert [o["name"] for o in plan["orphans"]] == ["owl"]
    out = cli(["gc", project])
    assert "1 orphan dropped" in out.output
    assert (project.parent / "renders" / "owl.mp4").exists()
    assert json.loads(cli(["plan", "--json", project]).output)["orphans"] == []


def test_state_is_plain_sqlite(project, sim_env):
    run_ok(project)
    conn = sqlite3.connect(project.parent / ".vidbatch" / "state.db")
    rows = conn.execute("select state, task_id, video_sha256 from jobs").fetchall()
    assert len(rows) == 3 and all(r[0] == "done" and r[1] and len(r[2]) == 64 for r in rows)
    request = json.loads(conn.execute("select request from jobs limit 1").fetchone()[0])
    assert request["model"] == "MiniMax-Hailuo-02"


def test_image_job_keeps_images_by_hash_not_base64(tmp_path, sim_env):
    write_png(tmp_path / "images" / "hero.png")
    manifest = tmp_path / "i2v.toml"
    manifest.write_text('[[jobs]]\nname = "hero"\nmodel = "I2V-01-Director"\nfirst_frame_image = "images/hero.png"\nprompt = "A hero [Push in]"\n')
    run_ok(manifest)
    db = (tmp_path / ".vidbatch" / "state.db").read_bytes()
    assert b"base64" not in db
    request = json.loads(sqlite3.connect(tmp_path / ".vidbatch" / "state.db").execute("select request from jobs").fetchone()[0])
    assert "sha256" in json.dumps(request["first_frame_image"])
    # replacing the image re-renders the job
    write_png(tmp_path / "images" / "hero.png", color=(10, 200, 10))
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    assert plan["jobs"][0]["action"] == "resubmit"


def test_run_keeps_a_report_current(project, sim_env):
    report = project.parent / "renders" / "report.html"
    run_ok(project, "--report", report)
    html = report.read_text()
    for name in PROMPTS:
        assert f'src="{name}.mp4"' in html


def test_a_replan_drops_queued_creates_an_edit_made_obsolete(tmp_path, sim):
    """Watch mode's guarantee at the library level: a render still waiting to be created when its
    manifest is edited is never paid for; both replans land before any create is dispatched."""
    from vidbatch import project
    from vidbatch.client import Client
    from vidbatch.plan import plan_jobs
    from vidbatch.runner import RunOptions, Runner

    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "Version one", "b": "Stable shot"}))
    before = project.load([manifest])
    manifest.write_text(t2v_manifest({"a": "Version two", "b": "Stable shot"}))
    after = project.load([manifest])
    store = Store(before.state_dir)
    events = []

    def on_event(e):
        events.append(e.kind)
        if e.kind == "idle":
            runner.stop()

    with Client(sim.key, sim.base_url) as client:
        runner = Runner(store, client, RunOptions(poll_interval=0, rpm=1e6), on_event=on_event)
        runner.replan(lambda st: plan_jobs(before.manifests, st))
        runner.replan(lambda st: plan_jobs(after.manifests, st))
        runner.run(keep_alive=True)
    assert sim.sim.creates_for("Version one") == 0
    assert sim.sim.creates_for("Version two") == 1 and sim.sim.creates_for("Stable shot") == 1
    assert events.count("dropped") == 1
    assert mp4.read_sim_metadata(tmp_path / "renders" / "a.mp4")["prompt"] == "Version two"


def test_a_touched_output_is_rehashed_once_then_trusted(project, sim_env):
    import os

    run_ok(project)
    owl = outputs_of(project)["owl"]
    os.utime(owl, ns=(1_000_000_000, 1_000_000_000))  # same bytes, new mtime (a copy, a backup restore)
    plan = json.loads(cli(["plan", "--json", project]).output)
    assert {j["name"]: j["action"] for j in plan["jobs"]}["owl"] == "skip"
    run_ok(project)
    assert Store(project.parent / ".vidbatch").output(owl).mtime_ns == 1_000_000_000


def test_an_image_changed_after_loading_is_not_sent_and_not_uncertain(tmp_path, sim):
    """The request's image bytes must match the job's key; if the file changed between loading and
    submitting, nothing is sent and the job stays `new` (not `uncertain`: no create was made)."""
    from vidbatch import project
    from vidbatch.client import Client
    from vidbatch.runner import RunOptions

    write_png(tmp_path / "images" / "hero.png")
    manifest = tmp_path / "i2v.toml"
    manifest.write_text('[[jobs]]\nname = "hero"\nmodel = "I2V-01"\nfirst_frame_image = "images/hero.png"\nprompt = "A hero"\n')
    ws = project.load([manifest])
    write_png(tmp_path / "images" / "hero.png", color=(1, 2, 3))
    with Client(sim.key, sim.base_url) as client:
        result = project.run(ws, client, RunOptions(poll_interval=0, rpm=1e6))
    assert result.unfinished == ["hero"] and result.exit_code == 1
    assert sim.sim.calls["create"] == 0
    assert Store(ws.state_dir).counts() == {"new": 1}


def test_a_wrong_host_stops_creating_after_the_first_refusal(tmp_path, sim_env, monkeypatch):
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({f"s{i}": f"Shot {i}" for i in range(5)}))
    monkeypatch.setenv("MINIMAX_API_HOST", sim_env.base_url + "/wrong/prefix")
    result = cli(["run", manifest, *FAST, "--concurrency", "1", "--json"])
    assert result.exit_code == 3, result.output
    assert "check the API host" in result.output
    assert [e["event"] for e in json_events(result.output)].count("submit") == 1, "one attempt, then stop"
    assert len(sim_env.sim.tasks) == 0
    assert Store(tmp_path / ".vidbatch").counts() == {"new": 5}, "nothing is left submitting or uncertain"
