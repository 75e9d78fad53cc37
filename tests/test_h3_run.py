"""MiniMax-H3 (Video Generation V2) runs: the runner against a scripted account (tests/fakes.py:
deterministic, no threads, no sleeping), then the real CLI against the simulator over loopback
HTTP, with the request on the wire checked against the contract."""

from __future__ import annotations

import json
from pathlib import Path


from vidbatch import errors, mp4
from vidbatch import project as project_mod
from vidbatch.events import EventKind
from vidbatch.plan import plan_jobs
from vidbatch.runner import RunEvent, RunOptions, Runner
from vidbatch.state import RenderState, Store

from .fakes import FakeClient, FakeClock
from .helpers import write

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
