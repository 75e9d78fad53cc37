"""MiniMax-H3 (Video Generation V2) runs: the runner against a scripted account (tests/fakes.py:
deterministic, no threads, no sleeping), then the real CLI against the simulator over loopback
HTTP, with the request on the wire checked against the contract."""

from __future__ import annotations

import io
import json
import signal
import struct
import time
from pathlib import Path

import pytest

from vidbatch import errors, facts, mp4
from vidbatch import project as project_mod
from vidbatch.events import EventKind
from vidbatch.plan import plan_jobs
from vidbatch.runner import RunEvent, RunOptions, Runner
from vidbatch.sim import SimConfig, running_simulator
from vidbatch.state import RenderState, Store

from .conftest import TEST_KEY
from .fakes import FakeClient, FakeClock
from .helpers import cli, cli_subprocess, png, write

H3 = "MiniMax-H3"


def h3_manifest(folder: Path, jobs: dict[str, str], *, v1: dict[str, str] | None = None, extra: str = 'ratio = "16:9"') -> Path:
    """H3 text jobs (name -> prompt), and v1 ones beside them when given."""
    text = 'output_dir = "renders"\n\n'
    for name, prompt in jobs.items():
        text += f'[[jobs]]\nname = "{name}"\nmodel = "{H3}"\nprompt = "{prompt}"\n{extra}\n\n'
    for name, prompt in (v1 or {}).items():
        text += f'[[jobs]]\nname = "{name}"\nmodel = "MiniMax-Hailuo-02"\nprompt = "{prompt}"\n\n'
    return write(folder, "shots.toml", text)


class Harness:
    """A manifest, its state, a scripted account and a clock that jumps; ``run()`` plans and runs."""

    def __init__(self, tmp_path: Path, jobs: dict[str, str], **options: object) -> None:
        self.tmp_path = tmp_path
        self.manifest = h3_manifest(tmp_path, jobs, v1=options.pop("v1", None))  # type: ignore[arg-type]
        self.clock = FakeClock()
        self.client = FakeClient(self.clock)
        self.options = RunOptions(**{"poll_interval": 5.0, "rpm": 60.0, **options})  # type: ignore[arg-type]
        self.events: list[RunEvent] = []
        self.store = Store(tmp_path / ".vidbatch")
        self.runner: Runner | None = None

    def plan(self):
        return plan_jobs(project_mod.load([self.manifest]).manifests, self.store)

    def run(self, **plan_kw: object):
        self.runner = Runner(self.store, self.client, self.options, self.events.append, clock=self.clock, workers=0)
        return self.runner.run(self.plan())

    def of(self, kind: EventKind) -> list[RunEvent]:
        return [e for e in self.events if e.kind == kind]

    def state(self, name: str) -> RenderState:
        job = next(pj.job for pj in self.plan().jobs if pj.job.name == name)
        rec = self.store.get(job.key)
        assert rec is not None
        return rec.state

    def output(self, name: str) -> Path:
        return self.tmp_path / "renders" / f"{name}.mp4"


def lost_without_a_task(body):
    raise errors.MaybeSubmittedError("create answer lost (fake)", errors.CallInfo("create"))


# --- mixed manifests, pacing, one create on the wire ----------------------------------------------


def test_one_manifest_mixes_v1_and_h3_jobs_each_on_its_own_api(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A", "b": "H3 shot B"}, v1={"c": "Hailuo shot C"})
    result = h.run()
    assert result.exit_code == 0, h.events
    assert h.client.count("create") == 1 and h.client.count("create_v2") == 2
    assert h.client.count("query_v2") == 2 and h.client.count("download_v2") == 2
    body = next(b for b in h.client.requests if b.get("content"))
    assert body["model"] == H3 and body["ratio"] == "16:9" and body["content"][0]["type"] == "text"
    for name in "abc":
        assert mp4.check_mp4(h.output(name)) == []
        assert h.state(name) is RenderState.DONE


def test_h3_usage_is_kept_on_the_spend_entry(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})
    h.run()
    rows = list(h.store.db.query("select task_id, kind, usage from spend"))
    assert len(rows) == 1 and rows[0]["kind"] == "accepted"
    assert json.loads(rows[0]["usage"])["output_seconds"] == 5


def test_at_most_one_h3_create_is_on_the_wire_and_h3_is_paced_on_its_own_rate(tmp_path):
    h = Harness(tmp_path, {f"s{i}": f"H3 shot {i}" for i in range(5)}, v1={"v": "Hailuo"}, rpm=6.0, v2_rpm=60.0, concurrency=10)
    on_wire: list[int] = []

    def create(body):
        assert h.runner is not None
        on_wire.append(sum(1 for key in h.runner._creating if key in h.runner._v2_in_flight))
        return h.client.make_v2_task(body)

    h.client.script("create_v2", *[create] * 5)
    assert h.run().exit_code == 0
    assert on_wire == [1] * 5
    times = h.client.times("create_v2")
    assert [round(b - a, 3) for a, b in zip(times, times[1:])] == [1.0] * 4  # 60 / v2_rpm, not 60 / rpm


def test_h3_in_flight_limit_holds_h3_creates_but_not_v1_ones(tmp_path):
    h = Harness(tmp_path, {"a": "H3 A", "b": "H3 B"}, v1={"v": "Hailuo V"}, v2_concurrency=1, rpm=600.0, v2_rpm=600.0)
    order: list[str] = []
    h.client.script("create", lambda body: order.append("v1") or "task-v1")
    h.client.script("create_v2", lambda body: order.append("v2") or h.client.make_v2_task(body), lambda body: order.append("v2") or h.client.make_v2_task(body))
    assert h.run().exit_code == 0
    # b waited for a to be downloaded (one H3 render in flight); the v1 job behind it did not wait
    assert order[:2] == ["v2", "v1"]
    starts = [e.job for e in h.of(EventKind.SUBMIT)]
    downloaded = [e.job for e in h.of(EventKind.DOWNLOADED)]
    assert starts.index("b") > 0 and "a" in downloaded


# --- lost create answers, settled by the task list --------------------------------------------------


def test_a_lost_answer_whose_task_exists_is_adopted_not_created_again(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})
    h.client.script("create_v2", h.client.lost_answer)
    result = h.run()
    assert result.exit_code == 0, [e.message for e in h.events]
    assert h.client.count("create_v2") == 1 and len(h.client.v2_tasks) == 1
    assert h.client.count("list_v2") == 1
    submitted = h.of(EventKind.SUBMITTED)
    assert len(submitted) == 1 and "adopted" in submitted[0].message
    assert h.state("a") is RenderState.DONE
    assert [r["kind"] for r in h.store.db.query("select kind from spend")] == ["accepted"]


def test_a_lost_answer_with_no_task_is_created_again(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})
    h.client.script("create_v2", lost_without_a_task)
    assert h.run().exit_code == 0
    assert h.client.count("create_v2") == 2 and len(h.client.v2_tasks) == 1
    assert h.state("a") is RenderState.DONE


def test_another_clients_task_in_the_window_leaves_the_job_uncertain_with_the_candidates(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A", "b": "H3 shot B"}, concurrency=1)

    def lost_beside_another(body):
        other = h.client.second_client()
        h.client.lost_answer(body)
        return other

    h.client.script("create_v2", lost_beside_another)
    result = h.run()
    assert result.uncertain == ["a"] and result.exit_code == 1
    assert h.state("a") is RenderState.UNCERTAIN and h.state("b") is RenderState.DONE
    uncertain = h.of(EventKind.UNCERTAIN)[0]
    assert set(uncertain.data["candidates"]) == {"v2task-1", "v2task-2"}
    rec = h.store.get(next(pj.job.key for pj in h.plan().jobs if pj.job.name == "a"))
    assert rec is not None and "v2task-1" in (rec.error_message or "")
    assert h.client.count("create_v2") == 2  # a once, b once: a was not created again
    # a later run does not create it again either (nothing settles it silently)
    again = h.run()
    assert again.uncertain == ["a"] and h.client.count("create_v2") == 2


def test_a_create_cut_off_by_a_crash_is_settled_at_the_next_start(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})

    def made_then_killed(body):
        h.client.make_v2_task(body)
        raise KeyboardInterrupt  # stands in for the kill: the answer never reaches the state

    h.client.script("create_v2", made_then_killed)
    h.run()
    assert h.state("a") is RenderState.SUBMITTING  # the intent, and nothing after it
    assert h.store.mark_interrupted_submissions() == []  # left to the task list, not made uncertain
    result = h.run()
    assert result.exit_code == 0, [e.message for e in h.events]
    assert len(h.client.v2_tasks) == 1 and h.client.count("create_v2") == 1
    assert h.state("a") is RenderState.DONE and mp4.check_mp4(h.output("a")) == []


def test_a_task_list_that_cannot_be_read_leaves_the_job_uncertain_until_the_next_run(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"}, create_rounds=2)
    h.client.script("create_v2", h.client.lost_answer)
    flaky = errors.TransientError("HTTP 503", errors.CallInfo("list", http_status=503))
    h.client.script("list_v2", flaky, flaky)
    first = h.run()
    assert first.uncertain == ["a"] and h.state("a") is RenderState.UNCERTAIN
    second = h.run()
    assert second.exit_code == 0 and h.state("a") is RenderState.DONE
    assert len(h.client.v2_tasks) == 1 and h.client.count("create_v2") == 1


def test_v1_lost_answers_stay_uncertain_as_before(tmp_path):
    h = Harness(tmp_path, {}, v1={"v": "Hailuo V"})
    h.client.script("create", errors.MaybeSubmittedError("lost", errors.CallInfo("create")))
    result = h.run()
    assert result.uncertain == ["v"] and h.client.count("list_v2") == 0


# --- cancel ------------------------------------------------------------------------------------------


def queued(client: FakeClient):
    return lambda body: client.make_v2_task(body, status="queued")


def test_a_replan_cancels_a_queued_h3_task_no_job_wants_any_more(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})
    h.client.script("create_v2", queued(h.client))
    runner = Runner(h.store, h.client, h.options, h.events.append, clock=h.clock, workers=0)
    h.runner = runner

    def edit(store):  # the user edits the prompt while the first task is queued
        h3_manifest(tmp_path, {"a": "H3 shot A, edited"})
        return plan_jobs(project_mod.load([h.manifest]).manifests, store)

    def on_event(e: RunEvent) -> None:
        h.events.append(e)
        if e.kind == EventKind.SUBMITTED and len(h.of(EventKind.SUBMITTED)) == 1:
            runner.replan(edit)

    runner.on_event = on_event
    result = runner.run(h.plan())
    assert result.exit_code == 0, [e.message for e in h.events]
    cancelled = h.of(EventKind.CANCELLED)
    assert len(cancelled) == 1 and cancelled[0].data["task_id"] == "v2task-1"
    assert h.client.v2_tasks["v2task-1"].status == "cancelled"
    assert h.client.count("create_v2") == 2 and h.state("a") is RenderState.DONE
    billed = {r["task_id"]: r["billed_amount"] for r in h.store.db.query("select task_id, billed_amount from spend")}
    assert billed["v2task-1"] == "0"


def test_cancel_jobs_cancels_queued_and_reports_running_ones(tmp_path):
    from vidbatch.runner import Cancelled, cancel_jobs

    h = Harness(tmp_path, {"q": "H3 queued", "r": "H3 running"}, v1={"v": "Hailuo"})
    plan = h.plan()
    jobs = {pj.job.name: pj.job for pj in plan.jobs}
    for name in ("q", "r"):
        h.store.record_seen(jobs[name].key, {}, model=H3, mode="t2v", duration=5, resolution="2K", prompt=name, name=name)
        h.store.record_intent(jobs[name].key, name=name)
    q = h.client.make_v2_task({"model": H3}, status="queued")
    r = h.client.make_v2_task({"model": H3}, status="running")
    h.store.record_submitted(jobs["q"].key, q, name="q")
    h.store.record_submitted(jobs["r"].key, r, name="r")
    got = {o.name: o.result for o in cancel_jobs(h.store, h.client, jobs.values(), record=True)}
    assert got == {"q": Cancelled.CANCELLED, "r": Cancelled.RUNNING, "v": Cancelled.NOT_V2}
    assert h.client.count("cancel_v2") == 1  # never a DELETE of a task that is not queued
    assert h.state("q") is RenderState.FAILED and h.state("r") is RenderState.RUNNING


# --- the real CLI against the simulator -------------------------------------------------------------

RUN = ["--poll-interval", "0", "--rpm", "60000"]


def mp4_media(size: int = 4096) -> bytes:
    """Enough of an MP4 for the media check: an ``ftyp`` box, then filler."""
    return struct.pack(">I", 24) + b"ftypisom" + b"\0\0\0\0isomiso2" + b"\0" * (size - 24)


def mp3_media(size: int = 2048) -> bytes:
    return b"ID3\x04\0\0\0\0\0\0" + b"\0" * (size - 10)


MODES = {
    "text": ('ratio = "21:9"\nduration = 8', []),
    "first": ('first_frame_image = "in/first.png"', [("image_url", "first_frame")]),
    "last": ('last_frame_image = "in/last.png"', [("image_url", "last_frame")]),
    "first-last": ('first_frame_image = "in/first.png"\nlast_frame_image = "in/last.png"\nduration = 10', [("image_url", "first_frame"), ("image_url", "last_frame")]),
    "refs": ('reference_images = ["in/face.png", "in/first.png"]\nratio = "9:16"', [("image_url", "reference_image")] * 2),
    "image-video-audio": (
        'reference_images = ["in/face.png"]\nreference_videos = ["in/clip.mp4"]\nreference_audios = ["in/voice.mp3"]',
        [("image_url", "reference_image"), ("video_url", "reference_video"), ("audio_url", "reference_audio")],
    ),
}


def modes_manifest(folder: Path) -> Path:
    png(folder / "in" / "first.png", 640, 360, (200, 80, 40))
    png(folder / "in" / "last.png", 640, 360, (40, 80, 200))
    png(folder / "in" / "face.png", 400, 600, (180, 160, 140))
    (folder / "in" / "clip.mp4").write_bytes(mp4_media())
    (folder / "in" / "voice.mp3").write_bytes(mp3_media())
    text = 'output_dir = "renders"\n\n[defaults]\nmodel = "MiniMax-H3"\n\n'
    for name, (fields, _) in MODES.items():
        text += f'[[jobs]]\nname = "{name}"\nprompt = "H3 {name} shot"\n{fields}\n\n'
    return write(folder, "modes.toml", text)


def sim_env(server) -> dict[str, str]:
    return {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}


def v2_task(server, prompt: str):
    found = [t for t in server.sim.tasks.v2_tasks() if t.prompt == prompt]
    assert len(found) == 1, f"{prompt}: {len(found)} tasks"
    return found[0]


def test_every_h3_mode_renders_through_the_cli_with_the_contracts_body_on_the_wire(tmp_path):
    manifest = modes_manifest(tmp_path)
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        result = cli(["run", manifest, *RUN], env=sim_env(server))
        assert result.exit_code == 0, result.output
        assert server.sim.calls["create"] == 0 and server.sim.calls["v2_create"] == len(MODES)
        for name, (_, media) in MODES.items():
            body = v2_task(server, f"H3 {name} shot").request
            assert set(body) <= set(facts.V2_REQUEST_FIELDS) and body["model"] == H3
            assert body["content"][0] == {"type": "text", "text": f"H3 {name} shot"}
            items = body["content"][1:]
            assert [(i["type"], i["role"]) for i in items] == media, name
            for item in items:  # local files travel as data URLs under the key named like the type
                assert item[item["type"]]["url"].startswith("data:"), name
            assert body["resolution"] == "2K"
            assert body["duration"] == {"text": 8, "first-last": 10}.get(name, 5)
            assert body["ratio"] == {"text": "21:9", "refs": "9:16"}.get(name, "adaptive")
            out = tmp_path / "renders" / f"{name}.mp4"
            assert mp4.check_mp4(out) == []
            meta = mp4.read_sim_metadata(out)
            assert meta is not None and meta["prompt"] == f"H3 {name} shot" and meta["api"] == "v2"
        status = json.loads(cli(["status", manifest, "--json"], env=sim_env(server)).output)
        assert {j["state"] for j in status["jobs"]} == {"done"}
        # a second run is a no-op: nothing created, nothing downloaded
        again = cli(["run", manifest, *RUN], env=sim_env(server))
        assert again.exit_code == 0 and server.sim.calls["v2_create"] == len(MODES)


def test_media_the_body_cannot_carry_are_uploaded_once_and_sent_as_mm_file(tmp_path, monkeypatch):
    folder = tmp_path
    (folder / "in").mkdir()
    png(folder / "in" / "face.png", 400, 600)
    (folder / "in" / "clip.mp4").write_bytes(mp4_media(200_000))
    write(folder, "big.toml", f'output_dir = "renders"\n\n[[jobs]]\nname = "big"\nmodel = "{H3}"\nprompt = "H3 big"\nreference_images = ["in/face.png"]\nreference_videos = ["in/clip.mp4"]\n')
    monkeypatch.setattr(facts, "V2_BODY_MAX_BYTES", 100_000)  # the 64 MB limit, scaled down
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        result = cli(["run", folder / "big.toml", *RUN], env=sim_env(server))
        assert result.exit_code == 0, result.output
        assert server.sim.calls["upload"] == 1
        items = v2_task(server, "H3 big").request["content"][1:]
        urls = {i["role"]: i[i["type"]]["url"] for i in items}
        assert urls["reference_video"].startswith(facts.V2_FILE_URL_SCHEME)
        assert urls["reference_image"].startswith("data:")  # small enough to travel inline


def run_until_submitted(manifest: Path, env: dict[str, str]) -> None:
    """``vidbatch run`` until its task is created, then Ctrl-C: the task stays in flight. Its
    output is read to the end: the run goes on polling (``--poll-interval 0``, a status line per
    poll) until the Ctrl-C lands, and with nobody reading, a full pipe blocked it for good
    (reproduced by sleeping 3 s before the Ctrl-C)."""
    proc = cli_subprocess(["run", manifest, "--json", *RUN], env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{") and json.loads(line)["event"] == "submitted":
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # the reason, if it ever fails


def test_cancel_cancels_a_queued_task_and_reports_a_running_one(tmp_path):
    running = h3_manifest(tmp_path, {"b": "H3 running B"})
    queued = write(tmp_path, "c.toml", f'output_dir = "renders"\n\n[[jobs]]\nname = "c"\nmodel = "{H3}"\nprompt = "H3 queued C"\nratio = "1:1"\n')
    # The sim clock is frozen (wall_clock): a task stays queued, or running, until advance()
    # moves it, however long the machine takes between the calls.
    frozen = time.time()
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600, wall_clock=lambda: frozen)) as server:
        env = sim_env(server)
        run_until_submitted(running, env)
        server.sim.advance(2000)  # past the queued half of its latency: running
        b = v2_task(server, "H3 running B")
        result = cli(["cancel", running, "--job", "b"], env=env)
        assert result.exit_code == 1 and "cannot be cancelled" in result.output, result.output
        assert b.cancelled_at is None and b.deleted_at is None
        run_until_submitted(queued, env)
        result = cli(["cancel", queued, "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.splitlines()[0])["result"] == "cancelled"
        assert v2_task(server, "H3 queued C").cancelled_at is not None
        status = json.loads(cli(["status", queued, "--json"], env=env).output)
        assert status["jobs"][0]["state"] == "failed"
        server.sim.advance(7200)
        again = cli(["run", queued, *RUN], env=env)  # a plain run does not pay for it again
        assert again.exit_code == 1 and v2_task(server, "H3 queued C").cancelled_at is not None
        # the running one finishes and is collected as usual
        assert cli(["run", running, *RUN], env=env).exit_code == 0
        assert mp4.read_sim_metadata(tmp_path / "renders" / "b.mp4")["prompt"] == "H3 running B"
        assert cli(["cancel", queued, "--job", "nope"], env=env).exit_code == 2


def test_an_h3_create_refused_with_2013_says_h3_refuses_token_plan_keys(tmp_path):
    """The contract: "H3 refuses keys of token/credit plans with 2013". A job that passed every
    local check and was refused so said only "fix the manifest", which was already right."""
    manifest = h3_manifest(tmp_path, {"a": "H3 refused A"})
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        server.sim.inject("v2_create", "code:2013")
        result = cli(["run", manifest, *RUN], env=sim_env(server))
    assert result.exit_code == 1, result.output
    assert "invalid parameters (2013)" in result.output and "token" in result.output, result.output


def test_cancel_with_a_refused_key_exits_3(tmp_path):
    """A refused key (or a wrong host) was one "could not be cancelled" outcome per job and exit
    1, as for a task that is merely running: a script could not tell the two apart."""
    queued = h3_manifest(tmp_path, {"q": "H3 queued Q"})
    frozen = time.time()
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600, wall_clock=lambda: frozen)) as server:
        env = sim_env(server)
        run_until_submitted(queued, env)
        for args in (["cancel", queued], ["cancel", queued, "--json"]):
            result = cli(args, env={**env, "MINIMAX_API_KEY": "sk-not-the-key-at-all"})
            assert result.exit_code == 3, result.output
            assert "invalid api key (2049)" in result.output and "sk-not-the-key-at-all" not in result.output
        assert v2_task(server, "H3 queued Q").cancelled_at is None
        result = cli(["cancel", queued], env=env)  # the right key cancels it
        assert result.exit_code == 0 and v2_task(server, "H3 queued Q").cancelled_at is not None


def test_a_watch_edit_of_a_queued_h3_job_cancels_its_task_and_it_is_never_billed(tmp_path):
    from .test_watch import Watch, atomic_write

    folder = tmp_path / "shots"
    folder.mkdir()
    manifest = h3_manifest(folder, {"fox": "H3 a slow fox"})
    charged = lambda shape: "0.65"  # noqa: E731 - any succeeded task costs this
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600, v2_price=charged, balance="100.00")) as server:
        w = Watch(folder, server)
        try:
            w.wait_for(lambda: w.of("submitted"), "the first render to be created")
            atomic_write(manifest, manifest.read_text().replace("a slow fox", "a quick fox"))
            w.wait_for(lambda: w.of("cancelled"), "the obsolete task to be cancelled")
            w.wait_for(lambda: len(w.of("submitted")) == 2, "the edited render to be created")
            old = v2_task(server, "H3 a slow fox")
            assert old.cancelled_at is not None
            server.sim.advance(7200)
            w.wait_for(lambda: w.of("downloaded"), "the edited render to be downloaded")
            assert mp4.read_sim_metadata(folder / "renders" / "fox.mp4")["prompt"] == "H3 a quick fox"
            assert old.status_at(server.sim.now()) == "cancelled"
            assert server.sim.balance() == "99.35"  # one render billed: the edited one
            assert not w.of("failed") and not w.of("error"), w.transcript()
        finally:
            w.close()


# --- the client's V2 calls, on a scripted session (answers no simulator gives) -----------------------


def v2_client(script: list):
    from vidbatch.client import Client

    from .test_client_unit import ScriptedSession

    class Streamed(ScriptedSession):  # downloads stream: the answer needs a raw body to close
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            resp = super().request(method, url, *args, **kwargs)
            resp.raw = io.BytesIO(resp._content or b"")
            return resp

    session = Streamed(script)
    return Client(TEST_KEY, "https://api.minimax.io", session=session, sleep=lambda s: None), session


def page(ids: list[str], *, created: list[int], **extra) -> tuple[int, bytes, dict]:
    items = [{"id": i, "status": "succeeded", "created_at": c, "model": H3} for i, c in zip(ids, created)]
    return 200, json.dumps({"items": items, **extra}).encode(), {"Date": "Wed, 02 Dec 2026 12:00:00 GMT"}


def test_list_pages_until_the_list_says_no_more_and_keeps_the_servers_date():
    client, session = v2_client([page(["a", "b"], created=[30, 20], has_more=True), page(["c"], created=[10], has_more=False)])
    got = client.list_v2(page_size=2)
    assert [t.task_id for t in got.tasks] == ["a", "b", "c"] and len(session.seen) == 2
    assert got.server_time == 1796212800.0


def test_list_stops_early_only_on_a_page_sorted_newest_first_that_is_older_than_asked():
    newest_first = [page(["a", "b"], created=[30, 20], total=6), page(["c", "d"], created=[10, 5], total=6)]
    client, session = v2_client(newest_first)
    assert [t.task_id for t in client.list_v2(page_size=2, created_after=25).tasks] == ["a", "b"]
    oldest_first = [page(["d", "c"], created=[5, 10], total=4), page(["b", "a"], created=[20, 30], total=4)]
    client, session = v2_client(oldest_first)
    assert [t.task_id for t in client.list_v2(page_size=2, created_after=25).tasks] == ["d", "c", "b", "a"]


@pytest.mark.parametrize(
    "answer, cls",
    [
        ((400, b'{"error": {"code": 2013, "message": "invalid params, ratio"}}', {}), errors.InvalidRequestError),
        ((402, b'{"error": {"code": 1008, "message": "insufficient balance"}}', {}), errors.AccountError),
        ((200, b'{"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}', {}), errors.AccountError),
        ((429, b'{"error": {"code": 1002, "message": "rate limit"}}', {"Retry-After": "3"}), errors.RateLimitedError),
        ((500, b'{"error": {"code": 1000, "message": "boom"}}', {}), errors.TransientError),
    ],
)
def test_v2_errors_in_either_form_go_through_the_one_classifier(answer, cls):
    client, _ = v2_client([answer])
    with pytest.raises(cls) as raised:
        client.create_v2({"model": H3, "content": [{"type": "text", "text": "x"}], "ratio": "16:9"})
    assert raised.value.info.status_code in (2013, 1008, 1002, 1000)
    assert TEST_KEY not in str(raised.value)


@pytest.mark.parametrize("status", [201, 202])
def test_a_create_answered_with_another_2xx_status_is_not_a_refusal(status):
    """The contract's errors are an HTTP *error* status or a non-zero base_resp: a create answered
    201 Created (or 202 Accepted) made a task. It was an InvalidRequestError (HTTP 201 read as a
    4xx-like refusal): the job failed while its task rendered and was billed, and running it
    again paid twice. Now its task_id is taken; without one, a task may exist (settled from the
    task list), never a refusal."""
    client, _ = v2_client([(status, b'{"task_id": "t9"}', {})])
    assert client.create_v2({"model": H3, "content": [{"type": "text", "text": "x"}], "ratio": "16:9"}) == "t9"
    client, _ = v2_client([(status, b"", {})])
    with pytest.raises(errors.MaybeSubmittedError):
        client.create_v2({"model": H3, "content": [{"type": "text", "text": "x"}], "ratio": "16:9"})


def test_an_expired_content_url_is_refreshed_by_querying_the_task_again(tmp_path):
    from .fakes import mp4_bytes

    video = mp4_bytes("v2")
    task = lambda url: (200, json.dumps({"task": {"id": "t1", "status": "succeeded", "content": {"url": url}}}).encode(), {})  # noqa: E731
    client, session = v2_client([
        (403, b"<Error>AccessDenied</Error>", {}),  # the URL the runner kept has expired
        task("https://cdn.example/fresh.mp4?sig=2"),
        (200, video, {"Content-Length": str(len(video))}),
    ])
    got = client.download_v2("t1", tmp_path / "out.mp4", url="https://cdn.example/old.mp4?sig=1")
    assert got.bytes == len(video) and (tmp_path / "out.mp4").read_bytes() == video
    assert [m for m, _ in session.seen] == ["GET", "GET", "GET"]
    assert session.seen[1][1].endswith("/v2/query/video_generation/t1")


def test_cancel_takes_an_answer_without_a_body_and_a_running_task_is_refused():
    client, _ = v2_client([(204, b"", {})])
    client.cancel_v2("t1")
    client, session = v2_client([(200, b"", {})])  # the contract gives no body: an empty 200 is a success
    client.cancel_v2("t1")
    assert len(session.seen) == 1
    client, _ = v2_client([(409, b'{"error": {"code": 2013, "message": "task t1 is running and cannot be cancelled"}}', {})])
    with pytest.raises(errors.InvalidRequestError):
        client.cancel_v2("t1")


def test_an_expired_content_url_is_refreshed_through_the_cli(tmp_path):
    manifest = h3_manifest(tmp_path, {"a": "H3 expiring A"})
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        server.sim.inject("v2_download", "expire")
        result = cli(["run", manifest, *RUN], env=sim_env(server))
        assert result.exit_code == 0, result.output
        assert server.sim.calls["v2_download"] == 2 and server.sim.calls["v2_create"] == 1
        assert mp4.read_sim_metadata(tmp_path / "renders" / "a.mp4")["prompt"] == "H3 expiring A"


def test_an_answered_create_whose_commit_a_crash_cut_off_is_taken_from_the_journal_without_asking_the_list(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})

    class Crash(BaseException):
        pass

    def never_committed(*a, **kw):
        raise Crash()  # the process dies after the journal line, before the commit

    h.store.record_submitted = never_committed  # type: ignore[method-assign]
    with pytest.raises(Crash):
        h.run()
    h.store.close()
    h.store = Store(tmp_path / ".vidbatch")  # the next process
    assert h.store.mark_interrupted_submissions() == []
    assert h.state("a") is RenderState.RUNNING and h.store.open_v2_intents() == []
    result = h.run()
    assert result.exit_code == 0, [e.message for e in h.events]
    assert h.client.count("list_v2") == 0, "the journal settled it: no task list lookup"
    assert len(h.client.v2_tasks) == 1 and h.client.count("create_v2") == 1
    assert h.state("a") is RenderState.DONE
