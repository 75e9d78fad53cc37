"""The runner in-process: a scripted fake client (no HTTP), a clock that jumps (no sleeping) and
inline workers (no threads), with a real manifest, plan and SQLite state. Every verdict of the
failure policy (vidbatch.policy) has a test here, call by call."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from vidbatch import errors, mp4, policy
from vidbatch import project as project_mod
from vidbatch.events import EventKind, Stop
from vidbatch.plan import plan_jobs
from vidbatch.policy import Call, ErrorKind, Limits, Verdict
from vidbatch.runner import RunEvent, RunOptions, Runner, RunResult
from vidbatch.state import Store

from .fakes import FakeClient, FakeClock, mp4_bytes, status
from .helpers import t2v_manifest

FAST = dict(poll_interval=5.0, rpm=60.0)


def info(call: str = "create", code: int | None = None) -> errors.CallInfo:
    return errors.CallInfo(call, status_code=code)


def transient() -> errors.TransientError:
    return errors.TransientError("HTTP 503", info())


def rate_limited(after: float | None = None) -> errors.RateLimitedError:
    return errors.RateLimitedError("HTTP 429", info(code=1002), retry_after=after)


class Harness:
    """A manifest on disk, its state, a fake client and clock; ``run()`` plans and runs it."""

    def __init__(self, tmp_path: Path, prompts: dict[str, str], **options: object):
        self.tmp_path = tmp_path
        self.manifest = tmp_path / "shots.toml"
        self.write(prompts)
        self.clock = FakeClock()
        self.client = FakeClient(self.clock)
        self.options = RunOptions(**{**FAST, **options})  # type: ignore[arg-type]
        self.events: list[RunEvent] = []
        self.store = Store(tmp_path / ".vidbatch")
        self.runner: Runner | None = None

    def write(self, prompts: dict[str, str]) -> None:
        self.manifest.write_text(t2v_manifest(prompts))

    def plan(self, **kw: object):
        ws = project_mod.load([self.manifest])
        return plan_jobs(ws.manifests, self.store, **kw)  # type: ignore[arg-type]

    def make_runner(self, store: Store | None = None) -> Runner:
        self.runner = Runner(store or self.store, self.client, self.options, self.events.append, clock=self.clock, workers=0)
        return self.runner

    def run(self, store: Store | None = None, **plan_kw: object):
        return self.make_runner(store).run(self.plan(**plan_kw))

    def kinds(self) -> list[str]:
        return [str(e.kind) for e in self.events]

    def of(self, kind: EventKind) -> list[RunEvent]:
        return [e for e in self.events if e.kind == kind]

    def states(self) -> dict[str, str]:
        return {rec.name: rec.state.value for rec in (self.store.get(pj.job.key) for pj in self.plan().jobs) if rec}

    def output(self, name: str) -> Path:
        return self.tmp_path / "renders" / f"{name}.mp4"


@pytest.fixture
def one(tmp_path):
    return Harness(tmp_path, {"a": "A red fox"})


@pytest.fixture
def three(tmp_path):
    return Harness(tmp_path, {"a": "Shot A", "b": "Shot B", "c": "Shot C"}, concurrency=1)


# --- the table --------------------------------------------------------------------------------

EXPECTED = """
                create          poll            download        copy            reconcile
transient       retry           retry           retry           leave           retry
rate_limited    pause           pause           pause           leave           pause
maybe_submitted uncertain       retry           leave           leave           retry
job_failed      fail_job        fail_job        leave           leave           leave
gone            leave           gone            gone            leave           leave
account         stop_creating   stop_creating   stop_creating   leave           stop_creating
config          stop_creating   stop_creating   stop_creating   leave           stop_creating
download_error  leave           retry           retry           leave           leave
local_write     leave           leave           leave           leave           leave
other_api       leave           retry           leave           leave           leave
internal        raise           raise           raise           raise           raise
"""


def _grid(text: str) -> dict[tuple[Call, ErrorKind], Verdict]:
    lines = [line.split() for line in text.strip().splitlines()]
    calls = [Call(c) for c in lines[0]]
    return {(call, ErrorKind(row[0])): Verdict(v.lower()) for row in lines[1:] for call, v in zip(calls, row[1:])}


def test_the_table_is_the_one_written_here_and_in_the_policy_docstring():
    assert policy.TABLE == _grid(EXPECTED)
    doc = policy.__doc__ or ""
    table = doc[doc.index("create          poll") :].split("\n\n")[0]
    assert _grid(table.replace("\n    ", "\n")) == policy.TABLE


@pytest.mark.parametrize(
    "error, kind",
    [
        (rate_limited(1.0), ErrorKind.RATE_LIMITED),
        (transient(), ErrorKind.TRANSIENT),
        (errors.MaybeSubmittedError("lost", info()), ErrorKind.MAYBE_SUBMITTED),
        (errors.ContentFlaggedError("flagged", info(code=1026)), ErrorKind.JOB_FAILED),
        (errors.RenderFailedError("Fail", info("query")), ErrorKind.JOB_FAILED),
        (errors.CredentialsError("bad key", info(code=1004)), ErrorKind.ACCOUNT),
        (errors.AccountError("balance", info(code=1008)), ErrorKind.ACCOUNT),
        (errors.ConfigError("wrong host"), ErrorKind.CONFIG),
        (errors.DownloadError("gone", info("download")), ErrorKind.DOWNLOAD),
        (errors.ApiError("odd answer", info()), ErrorKind.OTHER_API),
        (errors.StateError("locked"), ErrorKind.OTHER_API),
        (OSError(28, "No space left on device"), ErrorKind.LOCAL_WRITE),
        (RuntimeError("bug"), ErrorKind.INTERNAL),
    ],
)
def test_errors_are_classified_by_their_class(error, kind):
    assert policy.classify(error) is kind


def test_an_unreachable_host_error_counts_as_account():
    class HostUnreachableError(errors.AccountError):  # what the client's engineer adds
        pass

    assert policy.classify(HostUnreachableError("no route", info())) is ErrorKind.ACCOUNT


def test_retries_are_bounded_per_render_then_left():
    limits = Limits(create_rounds=3, download_rounds=2, poll_rounds=4)
    spent: dict = {}
    verdicts = []
    for _ in range(4):
        d = policy.decide(Call.CREATE, transient(), spent=spent, limits=limits)
        verdicts.append((d.verdict, d.exhausted))
        spent[(Call.CREATE, d.counted)] = spent.get((Call.CREATE, d.counted), 0) + 1
    assert verdicts == [(Verdict.RETRY, False), (Verdict.RETRY, False), (Verdict.LEAVE, True), (Verdict.LEAVE, True)]
    assert policy.decide(Call.DOWNLOAD, transient(), spent={(Call.DOWNLOAD, Verdict.RETRY): 1}, limits=limits).verdict is Verdict.LEAVE
    assert policy.decide(Call.POLL, transient(), spent={(Call.POLL, Verdict.RETRY): 2}, limits=limits).verdict is Verdict.RETRY


def test_poll_retries_back_off_from_the_poll_interval_up_to_a_cap():
    limits = Limits(poll_interval=10.0, retry_max=300.0, poll_rounds=100)
    delays = [policy.decide(Call.POLL, transient(), spent={(Call.POLL, Verdict.RETRY): n}, limits=limits).delay for n in range(7)]
    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    fast = Limits(poll_interval=0.0, retry_base=1.0)
    assert policy.decide(Call.POLL, transient(), spent={}, limits=fast).delay == 1.0


def test_a_rate_limit_pause_is_the_servers_retry_after_exactly_even_when_short():
    limits = Limits(rate_limit_pause=30.0, rate_limit_base=12.0)
    for after in (0.0, 0.25, 1.0, 45.0):
        assert policy.decide(Call.CREATE, rate_limited(after), spent={}, limits=limits).delay == after


def test_without_retry_after_the_pause_doubles_from_one_create_slot_up_to_the_cap():
    limits = RunOptions(rpm=60.0, rate_limit_pause=30.0).limits()
    pauses = [policy.decide(Call.CREATE, rate_limited(None), spent={}, limits=limits, rate_limited_in_row=n).delay for n in range(1, 8)]
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    fast = RunOptions(rpm=60000.0).limits()
    assert policy.decide(Call.CREATE, rate_limited(None), spent={}, limits=fast).delay == pytest.approx(0.001)


def test_rate_limits_are_bounded_too():
    limits = Limits(rate_limit_rounds=3)
    assert policy.decide(Call.POLL, rate_limited(1.0), spent={(Call.POLL, Verdict.PAUSE): 1}, limits=limits).verdict is Verdict.PAUSE
    d = policy.decide(Call.POLL, rate_limited(1.0), spent={(Call.POLL, Verdict.PAUSE): 2}, limits=limits)
    assert d.verdict is Verdict.LEAVE and d.exhausted


def test_state_write_errors_are_recognised():
    assert policy.is_state_write_error(sqlite3.OperationalError("database or disk is full"))
    assert policy.is_state_write_error(errors.StateError("cannot write"))
    assert not policy.is_state_write_error(OSError("disk full while downloading"))


# --- a run without failures -------------------------------------------------------------------


def test_a_clean_run_creates_polls_and_downloads_each_job_once(three):
    three.client.script("query", "Processing")
    result = three.run()
    assert result.exit_code == 0 and result.stopped is None
    assert three.client.count("create") == 3 and three.client.count("download") == 3
    assert three.states() == {"a": "done", "b": "done", "c": "done"}
    for name in "abc":
        assert mp4.check_mp4(three.output(name)) == []
    p = result.progress
    assert (p.total, p.done, p.running, p.queued, p.failed, p.uncertain, p.created) == (3, 3, 0, 0, 0, 0, 3)
    kinds = three.kinds()
    assert kinds[0] == "start" and kinds[-1] == "finish" and kinds.count("status") == 1
    assert three.of(EventKind.FINISH)[0].to_json()["stopped"] is None
    assert [p.name for p in (three.tmp_path / "renders").glob(".*")] == [".vidbatch-index.json"], "no staging or lock files left"


def test_creates_are_paced_by_rpm_and_polls_by_the_poll_interval_on_the_injected_clock(three):
    three.options = RunOptions(**FAST, concurrency=5)  # type: ignore[arg-type]
    three.client.script("query", "Processing")
    three.run()
    creates = three.client.times("create")
    assert [round(b - a, 6) for a, b in zip(creates, creates[1:])] == [1.0, 1.0], "60 rpm: one create a second"
    polls = [t for call, task, t in three.client.calls if call == "query" and task == "task-1"]
    assert polls[0] - creates[0] == pytest.approx(5.0), "first poll one poll interval after the create"
    assert polls[1] - polls[0] == pytest.approx(5.0)


def test_counts_are_derived_from_job_phases_while_running(three):
    seen = []
    three.events = []
    three.make_runner()
    runner = three.runner
    assert runner is not None
    runner.on_event = lambda e: seen.append((str(e.kind), e.progress.total, e.progress.queued, e.progress.running, e.progress.done))
    runner.run(three.plan())
    assert seen[0] == ("start", 0, 0, 0, 0), "counted as the plan is taken"
    first_submit = next(s for s in seen if s[0] == "submit")
    assert first_submit == ("submit", 3, 2, 1, 0)
    assert seen[-1] == ("finish", 3, 0, 0, 3)


def test_identical_requests_are_created_once_and_copied(tmp_path):
    h = Harness(tmp_path, {"a": "Same", "b": "Same"})
    result = h.run()
    assert result.exit_code == 0
    assert h.client.count("create") == 1
    assert h.output("a").read_bytes() == h.output("b").read_bytes()
    assert [str(e.kind) for e in h.events if e.kind in (EventKind.DOWNLOADED, EventKind.REUSED)] == ["downloaded", "reused"]
    assert result.progress.done == 2


def test_a_second_run_skips_and_a_renamed_job_reuses_without_calls(one):
    one.run()
    calls = len(one.client.calls)
    again = one.run()
    assert len(one.client.calls) == calls and again.progress.done == 1
    assert one.kinds().count("skip") == 1
    one.write({"renamed": "A red fox"})
    result = one.run()
    assert result.exit_code == 0 and len(one.client.calls) == calls
    assert one.output("renamed").read_bytes() == one.output("a").read_bytes()


def test_a_touched_output_is_rehashed_and_its_new_mtime_remembered(one):
    one.run()
    os.utime(one.output("a"), ns=(1_000_000_000, 1_000_000_000))
    one.run()
    assert one.store.output(one.output("a")).mtime_ns == 1_000_000_000


# --- create: every verdict --------------------------------------------------------------------


def test_create_retry_requeues_and_creates_once(one):
    one.client.script("create", transient(), transient())
    result = one.run()
    assert result.exit_code == 0
    assert one.client.count("create") == 3 and result.progress.created == 1
    assert one.kinds().count("retry") == 2


def test_create_retry_is_bounded_then_the_job_stays_new(one):
    one.client.script("create", *[transient() for _ in range(4)])
    result = one.run()
    assert one.client.count("create") == 4, "create_rounds = 4 tries"
    assert result.unfinished == ["a"] and result.exit_code == errors.EXIT_JOBS_FAILED
    assert one.states() == {"a": "new"}
    assert "the next run will try again" in one.of(EventKind.ERROR)[0].message


def test_create_pause_waits_the_servers_short_retry_after_not_a_floor(three):
    three.client.script("create", rate_limited(0.5))
    result = three.run()
    assert result.exit_code == 0 and three.client.count("create") == 4
    times = three.client.times("create")
    assert times[1] - times[0] == pytest.approx(1.0), "the job goes back to the front; pacing slot (60 rpm) dominates 0.5 s"
    ev = three.of(EventKind.RATE_LIMITED)[0]
    assert ev.data["pause"] == 0.5 and ev.job == "a"
    assert [r["prompt"] for r in three.client.requests][:2] == ["Shot A", "Shot A"], "requeued at the front"


def test_create_pause_holds_every_create_for_a_long_retry_after(three):
    three.client.script("create", rate_limited(20.0))
    three.run()
    times = three.client.times("create")
    assert times[1] - times[0] == pytest.approx(20.0)
    assert three.clock.elapsed() < 60, "never floored to a long default"


def test_create_pause_is_bounded(one):
    one.options = RunOptions(**FAST, rate_limit_rounds=3)  # type: ignore[arg-type]
    one.client.script("create", *[rate_limited(1.0) for _ in range(3)])
    result = one.run()
    assert one.client.count("create") == 3 and result.unfinished == ["a"]
    assert one.states() == {"a": "new"}


def test_create_uncertain_is_recorded_and_not_created_again(one):
    one.client.script("create", errors.MaybeSubmittedError("answer lost", info()))
    result = one.run()
    assert result.uncertain == ["a"] and result.exit_code == 1 and result.progress.uncertain == 1
    assert one.states() == {"a": "uncertain"}
    again = one.run()
    assert one.client.count("create") == 1, "never re-created silently"
    assert again.uncertain == ["a"]


def test_create_fail_job_fails_that_job_and_the_others_go_on(three):
    three.client.script("create", errors.InvalidRequestError("invalid", info(code=2013)))
    result = three.run()
    assert result.failed == ["a"] and result.progress.done == 2 and result.progress.failed == 1
    assert three.states() == {"a": "failed", "b": "done", "c": "done"}
    assert three.of(EventKind.FAILED)[0].data["code"] == 2013
    again = three.run()
    assert again.failed == ["a"] and three.of(EventKind.FAILED)[-1].data["previously"] is True


@pytest.mark.parametrize(
    "error",
    [
        errors.AccountError("insufficient balance", info(code=1008)),
        errors.CredentialsError("invalid key", info(code=1004)),
        errors.ConfigError("check the API host"),
    ],
)
def test_create_stop_creating_sends_no_other_create(three, error):
    three.client.script("create", error)
    result = three.run()
    assert three.client.count("create") == 1
    assert result.stopped is Stop.ACCOUNT and result.exit_code == errors.EXIT_ACCOUNT
    assert result.stop_message == str(error)
    assert sorted(result.unfinished) == ["a", "b", "c"]
    assert three.states() == {"a": "new", "b": "new", "c": "new"}
    assert three.kinds().count("account_stop") == 1


def test_create_stop_creating_still_collects_renders_already_running(tmp_path):
    h = Harness(tmp_path, {"a": "Shot A", "b": "Shot B"}, concurrency=5)
    h.client.script("create", "task-ok", errors.AccountError("balance", info(code=1008)))
    result = h.run()
    assert h.states() == {"a": "done", "b": "new"}
    assert result.exit_code == errors.EXIT_ACCOUNT and result.progress.done == 1


def test_create_leave_on_an_unexpected_answer_keeps_the_job_new(one):
    one.client.script("create", errors.ApiError("code 9999", info(code=9999)))
    result = one.run()
    assert result.unfinished == ["a"] and one.states() == {"a": "new"}
    assert one.client.count("create") == 1


def test_create_raise_on_a_bug_propagates_and_the_job_stays_new(one):
    one.client.script("create", RuntimeError("bug in vidbatch"))
    with pytest.raises(RuntimeError):
        one.run()
    assert one.states() == {"a": "new"}
    assert "internal error" in (one.store.get(one.plan().jobs[0].job.key).error_message or "")


def test_a_request_that_cannot_be_built_is_not_sent(tmp_path):
    from .helpers import write_png

    write_png(tmp_path / "images" / "hero.png")
    h = Harness(tmp_path, {})
    h.manifest.write_text('[[jobs]]\nname = "hero"\nmodel = "I2V-01"\nfirst_frame_image = "images/hero.png"\nprompt = "A hero"\n')
    plan = h.plan()
    write_png(tmp_path / "images" / "hero.png", color=(1, 2, 3))
    result = h.make_runner().run(plan)
    assert result.unfinished == ["hero"] and h.client.count("create") == 0
    assert "not submitted" in h.of(EventKind.ERROR)[0].message


# --- poll -------------------------------------------------------------------------------------


def test_poll_retry_backs_off_then_succeeds(one):
    one.client.script("query", transient(), transient())
    result = one.run()
    assert result.exit_code == 0
    polls = one.client.times("query")
    assert [b - a for a, b in zip(polls, polls[1:])] == [5.0, 10.0]


def test_poll_retry_is_bounded_and_the_task_is_resumed_next_run(one):
    one.options = RunOptions(**FAST, poll_rounds=3)  # type: ignore[arg-type]
    one.client.script("query", transient(), transient(), transient())
    result = one.run()
    assert result.unfinished == ["a"] and one.states() == {"a": "running"}
    assert "polls it again" in one.of(EventKind.ERROR)[0].message
    again = one.run()
    assert again.exit_code == 0 and one.client.count("create") == 1, "resumed, not created again"
    assert one.states() == {"a": "done"}


def test_poll_pause_polls_again_after_retry_after(one):
    one.client.script("query", rate_limited(7.0))
    assert one.run().exit_code == 0
    polls = one.client.times("query")
    assert polls[1] - polls[0] == pytest.approx(7.0)
    assert one.of(EventKind.RATE_LIMITED)[0].data["pause"] == 7.0


@pytest.mark.parametrize("answer", [status("task-1", "Fail"), errors.RenderFailedError("Fail", info("query"))])
def test_poll_fail_job(one, answer):
    one.client.script("query", answer)
    result = one.run()
    assert result.failed == ["a"] and one.states() == {"a": "failed"}
    assert one.client.count("download") == 0


def test_poll_flagged_output_fails_with_its_code(one):
    one.client.script("query", status("task-1", "Fail", code=1027))
    result = one.run()
    assert result.failed == ["a"] and one.of(EventKind.FAILED)[0].data["code"] == 1027


def test_poll_stop_creating_leaves_the_task_running_for_the_next_run(three):
    three.options = RunOptions(**{**FAST, "concurrency": 5})  # type: ignore[arg-type]
    three.client.script("query", errors.CredentialsError("key refused", info("query", 1004)))
    result = three.run()
    assert result.stopped is Stop.ACCOUNT and result.exit_code == errors.EXIT_ACCOUNT
    assert three.client.count("create") == 3, "all three were created before the first poll"
    assert three.states()["a"] == "running"
    assert "a" in result.unfinished


def test_poll_raise(one):
    one.client.script("query", KeyError("bug"))
    with pytest.raises(KeyError):
        one.run()


# --- download ---------------------------------------------------------------------------------


def test_download_retry_then_success(one):
    one.client.script("download", errors.DownloadError("truncated", info("download")), mp4_bytes("broken")[:-3])
    result = one.run()
    assert result.exit_code == 0 and one.client.count("download") == 3
    assert one.kinds().count("retry") == 2
    assert mp4.check_mp4(one.output("a")) == []


def test_download_retry_is_bounded_and_the_render_is_kept(one):
    one.client.script("download", *[errors.DownloadError("gone", info("download")) for _ in range(3)])
    result = one.run()
    assert one.client.count("download") == 3 and result.unfinished == ["a"]
    assert one.states() == {"a": "rendered"}
    assert not one.output("a").exists()
    again = one.run()
    assert again.exit_code == 0 and one.client.count("create") == 1, "downloaded again without a new render"


def test_download_pause(one):
    one.client.script("download", rate_limited(3.0))
    assert one.run().exit_code == 0
    times = one.client.times("download")
    assert times[1] - times[0] == pytest.approx(3.0)


def test_download_leave_on_a_local_write_error(one):
    one.client.script("download", OSError(28, "No space left on device"))
    result = one.run()
    assert result.unfinished == ["a"] and one.client.count("download") == 1
    assert one.states() == {"a": "rendered"}
    assert "No space left" in one.of(EventKind.ERROR)[0].message


def test_download_stop_creating(three):
    three.client.script("download", errors.CredentialsError("key refused", info("retrieve", 1004)))
    result = three.run()
    assert result.stopped is Stop.ACCOUNT
    assert three.client.count("create") == 1 or three.states()["a"] == "rendered"
    assert three.states()["a"] == "rendered"


def test_download_raise(one):
    one.client.script("download", ValueError("bug"))
    with pytest.raises(ValueError):
        one.run()


# --- copy -------------------------------------------------------------------------------------


def test_copy_leave_when_the_copy_cannot_be_written(tmp_path, monkeypatch):
    h = Harness(tmp_path, {"a": "Same", "b": "Same"})

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vidbatch.runner.shutil.copyfile", full)
    result = h.run()
    assert result.unfinished == ["b"] and result.progress.done == 1
    assert "copy failed" in h.of(EventKind.ERROR)[0].message


def test_copy_of_an_incomplete_file_is_refused(tmp_path, monkeypatch):
    h = Harness(tmp_path, {"a": "Same", "b": "Same"})
    monkeypatch.setattr("vidbatch.runner.shutil.copyfile", lambda src, dst: Path(dst).write_bytes(b"short"))
    result = h.run()
    assert result.unfinished == ["b"] and not h.output("b").exists()


def test_copy_raise(tmp_path, monkeypatch):
    h = Harness(tmp_path, {"a": "Same", "b": "Same"})
    monkeypatch.setattr("vidbatch.runner.shutil.copyfile", lambda src, dst: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        h.run()


# --- stop, Ctrl-C, watch mode -----------------------------------------------------------------


def test_stop_saves_what_is_on_the_wire_and_leaves_the_rest_resumable(three):
    def on_event(e):
        three.events.append(e)
        if e.kind == EventKind.SUBMITTED:
            runner.stop()

    runner = three.make_runner()
    runner.on_event = on_event
    result = runner.run(three.plan())
    assert result.stopped is Stop.INTERRUPTED and result.exit_code == errors.EXIT_INTERRUPTED
    assert three.client.count("create") == 1
    assert three.states() == {"a": "running", "b": "new", "c": "new"}
    assert sorted(result.unfinished) == ["a", "b", "c"]


def test_ctrl_c_in_a_call_interrupts_the_run(one):
    one.client.script("query", KeyboardInterrupt())
    result = one.run()
    assert result.stopped is Stop.INTERRUPTED and one.states() == {"a": "running"}
    assert one.kinds()[-2:] == ["interrupted", "finish"]


def test_a_second_ctrl_c_during_the_clean_up_does_not_cut_it_short(one, monkeypatch):
    """A second Ctrl-C soon after the first lands in the run's clean-up (the index flush, the
    journal, the finish, closing the wire). Raised there by Python's own handler, it cut the
    clean-up short: no finish event or summary, the wire's loop left with tasks pending (printed
    at exit as "Task was destroyed but it is pending!")."""
    settle = Runner._settle_journal

    def second_ctrl_c(self):
        os.kill(os.getpid(), signal.SIGINT)  # a real signal, to whatever handler is in place
        settle(self)

    monkeypatch.setattr(Runner, "_settle_journal", second_ctrl_c)
    one.client.script("query", KeyboardInterrupt())
    try:
        result = one.run()
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C was raised in the clean-up")
    assert result.stopped is Stop.INTERRUPTED and one.states() == {"a": "running"}
    assert one.kinds()[-2:] == ["interrupted", "finish"]


def test_replanning_the_same_manifest_never_grows_total(tmp_path):
    """Issue 10: `done 24/24` for an 8-job manifest after two saves in watch mode."""
    h = Harness(tmp_path, {f"s{i}": f"Shot {i}" for i in range(8)}, rpm=6000.0)
    idles = []

    def on_event(e):
        h.events.append(e)
        if e.kind == EventKind.IDLE:
            idles.append((e.progress.done, e.progress.total))
            if len(idles) < 3:
                h.manifest.touch()  # a save of the same manifest
                runner.replan(lambda st: h.plan())
            else:
                runner.stop()

    runner = h.make_runner()
    runner.on_event = on_event
    runner.replan(lambda st: h.plan())
    runner.run(keep_alive=True)
    assert idles == [(8, 8), (8, 8), (8, 8)]
    assert h.client.count("create") == 8


def test_a_replan_drops_a_queued_create_an_edit_made_obsolete_and_renames_are_counted_once(tmp_path):
    h = Harness(tmp_path, {"a": "Version one", "b": "Stable"})
    before = h.plan()
    h.write({"a": "Version two", "b": "Stable"})
    after = h.plan()
    h.write({"a2": "Version two", "b": "Stable"})
    renamed = h.plan()

    def on_event(e):
        h.events.append(e)
        if e.kind == EventKind.IDLE:
            runner.stop()

    runner = h.make_runner()
    runner.on_event = on_event
    for plan in (before, after, renamed):
        runner.replan(lambda st, plan=plan: plan)
    runner.run(keep_alive=True)
    assert sorted(r["prompt"] for r in h.client.requests) == ["Stable", "Version two"]
    assert h.kinds().count("dropped") == 1
    assert runner.progress.total == 2 and runner.progress.done == 2
    assert h.output("a2").exists() and not h.output("a").exists()


# --- the state database fails mid-run ---------------------------------------------------------


class FailingStore(Store):
    """A store whose writes start failing (a full disk) once ``fail_from`` is called."""

    failing: set[str] = set()

    def _maybe_fail(self, what: str) -> None:
        if what in self.failing or "*" in self.failing:
            raise sqlite3.OperationalError("database or disk is full")

    def record_submitted(self, *a, **kw):
        self._maybe_fail("record_submitted")
        return super().record_submitted(*a, **kw)

    def record_intent(self, *a, **kw):
        self._maybe_fail("record_intent")
        return super().record_intent(*a, **kw)

    def record_downloaded(self, *a, **kw):
        self._maybe_fail("record_downloaded")
        return super().record_downloaded(*a, **kw)

    def record_status(self, *a, **kw):
        self._maybe_fail("record_status")
        return super().record_status(*a, **kw)

    def record_rendered(self, *a, **kw):
        self._maybe_fail("record_rendered")
        return super().record_rendered(*a, **kw)

    def record_seen_many(self, *a, **kw):
        self._maybe_fail("record_seen_many")
        return super().record_seen_many(*a, **kw)


def run_until_the_disk_fills(tmp_path: Path) -> tuple[Harness, FailingStore, RunResult]:
    """Three jobs, two at a time; the state's writes start failing once the first create is sent
    (its task id and everything after it cannot be saved)."""
    h = Harness(tmp_path, {"a": "Shot A", "b": "Shot B", "c": "Shot C"}, concurrency=2)
    store = FailingStore(tmp_path / ".vidbatch")
    store.failing = set()

    def on_event(e):
        h.events.append(e)
        if e.kind == EventKind.SUBMIT and not store.failing:
            store.failing = {"record_submitted", "record_status", "record_rendered", "record_downloaded"}

    runner = h.make_runner(store)
    runner.on_event = on_event
    return h, store, runner.run(h.plan())  # no traceback


def test_a_full_disk_for_the_state_stops_creating_keeps_collecting_and_reports_every_unsaved_task_id(tmp_path):
    h, _, result = run_until_the_disk_fills(tmp_path)
    assert h.client.count("create") == 1, "nothing new is created once the state cannot be written"
    assert result.unsaved == {"task-1": "a"}
    unsaved = h.of(EventKind.UNSAVED)
    assert [e.data["task_id"] for e in unsaved] == ["task-1"]
    assert h.output("a").exists(), "the created render is still polled and downloaded from memory"
    assert result.stopped is Stop.STATE and result.exit_code == errors.EXIT_JOBS_FAILED
    assert "task-1" in (result.stop_message or "") and "run again" in (result.stop_message or "")
    assert h.of(EventKind.FINISH)[0].data["unsaved"] == {"task-1": "a"}
    assert len(h.of(EventKind.STATE_ERROR)) == 1
    assert sorted(result.unfinished) == ["b", "c"]


def test_an_intent_that_cannot_be_saved_is_never_sent(one):
    store = FailingStore(one.tmp_path / ".vidbatch")
    store.failing = {"record_intent"}
    result = one.run(store)
    assert one.client.count("create") == 0
    assert result.unfinished == ["a"] and result.stopped is Stop.STATE


def test_a_state_failure_while_taking_the_plan_is_reported_not_raised(one):
    store = FailingStore(one.tmp_path / ".vidbatch")
    store.failing = {"record_seen_many", "record_intent"}
    result = one.run(store)
    assert result.stopped is Stop.STATE and one.client.count("create") == 0


def test_clean_staging_removes_staging_files_and_the_old_clients_partial_downloads_into_them(tmp_path):
    from vidbatch.files import STAGING_SUFFIX, clean_staging

    out = tmp_path / "renders" / "a.mp4"
    out.parent.mkdir()
    out.write_bytes(b"kept")
    staging = out.with_name(f".a.mp4.1234abcd{STAGING_SUFFIX}")
    part = out.with_name(f".{staging.name}.0123456789ab.part")
    unrelated = out.with_name(".notes.part")
    for f in (staging, part, unrelated):
        f.write_bytes(b"x")
    clean_staging([out])
    assert sorted(p.name for p in out.parent.iterdir()) == [".notes.part", "a.mp4"]


def test_rate_limits_without_retry_after_back_off_while_they_last(three):
    three.options = RunOptions(**{**FAST, "concurrency": 5, "rpm": 60.0})  # type: ignore[arg-type]
    three.client.script("create", rate_limited(None), rate_limited(None), rate_limited(None))
    result = three.run()
    assert result.exit_code == 0
    assert [e.data["pause"] for e in three.of(EventKind.RATE_LIMITED)] == [1.0, 2.0, 4.0]


def test_a_state_database_deleted_under_the_run_stops_creating(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"a": "A fox", "b": "An owl", "c": "A lighthouse"})

    def create_then_lose_the_state(request: object) -> str:
        for p in (tmp_path / ".vidbatch").glob("state.db*"):
            p.unlink()
        return "task-1"

    h.client.script("create", create_then_lose_the_state)
    result = h.run()
    assert h.client.count("create") == 1, "created into a deleted state database"
    assert result.stopped is Stop.STATE and "deleted or replaced" in (result.stop_message or "")
    assert result.exit_code == 1
    assert h.output("a").exists(), "the render already paid for is still collected"
    index = (tmp_path / "renders" / ".vidbatch-index.json").read_text()
    assert '"task_id": "task-1"' in index, "the index keeps what the lost state knew"


def test_a_state_folder_deleted_while_its_tasks_render_is_put_back_before_the_next_poll(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"a": "A fox"})

    def lose_the_state_folder(task_id: str) -> str:
        shutil.rmtree(tmp_path / ".vidbatch")  # rm -rf .vidbatch: nothing is left to create
        return "Processing"

    h.client.script("query", lose_the_state_folder, "Processing")
    result = h.run()
    kinds = h.kinds()
    assert kinds.index("state_error") == kinds.index("status") + 1, "noticed before the next poll (a second later at most)"
    assert "put back" in h.of(EventKind.STATE_ERROR)[0].message
    assert result.stopped is Stop.STATE and result.exit_code == 1
    assert h.output("a").exists(), "the render already paid for is still collected"
    h.store.close()
    back = Store(tmp_path / ".vidbatch")
    assert back.counts() == {"done": 1}, "into the database put back in its folder"
    back.close()
    assert h.client.count("create") == 1


def test_gone_verdicts_by_call() -> None:
    gone = errors.TaskGoneError("query refused: task not found (2013)", info("query", 2013))
    limits = Limits()
    assert policy.classify(gone) is ErrorKind.GONE
    assert policy.decide(Call.POLL, gone, spent={}, limits=limits).verdict is Verdict.GONE
    assert policy.decide(Call.DOWNLOAD, gone, spent={}, limits=limits).verdict is Verdict.GONE


def test_two_state_folders_at_once_over_one_output_folder_never_pay_twice(tmp_path: Path) -> None:
    first = Harness(tmp_path, {"a": "A fox", "b": "An owl"})
    second_store = Store(tmp_path / "other-state")
    second_client = FakeClient(first.clock)
    second_events: list[RunEvent] = []
    outcome: dict[str, object] = {}

    def create_while_another_state_runs(request: object) -> str:
        if "second" not in outcome:  # the other run starts while this one is creating
            runner = Runner(second_store, second_client, first.options, second_events.append, clock=first.clock, workers=0)
            outcome["second"] = runner.run(plan_jobs(project_mod.load([first.manifest]).manifests, second_store))
        return f"task-{len(outcome)}-{id(request)}"

    first.client.script("create", create_while_another_state_runs, create_while_another_state_runs)
    result = first.run()
    assert result.exit_code == 0
    second = outcome["second"]
    assert second_client.count("create") == 0, "the second state paid for renders the first was making"
    assert sorted(second.unfinished) == ["a", "b"]  # type: ignore[attr-defined]
    assert any("another vidbatch run" in e.message for e in second_events)
    # once the first has finished, the second adopts its videos from the index
    again = Runner(second_store, second_client, first.options, second_events.append, clock=first.clock, workers=0)
    assert again.run(plan_jobs(project_mod.load([first.manifest]).manifests, second_store)).exit_code == 0
    assert second_client.count("create") == 0 and second_client.count("download") == 0
