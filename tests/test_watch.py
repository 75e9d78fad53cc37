"""``vidbatch watch``: the real process, against the simulator over real HTTP.

Each test starts ``python -m vidbatch watch DIR --json`` as a subprocess, reads its JSON events in
a background thread, changes files in DIR and waits (with generous timeouts, never a fixed sleep)
for conditions: an event, a file, a count of creates at the simulator. "Settled" is the runner's
``idle`` event after the plan the test is waiting for: everything that plan started is done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from vidbatch import mp4
from vidbatch.sim import SimConfig, running_simulator
from vidbatch.watch import is_temporary

from .conftest import TEST_KEY
from .helpers import cli_subprocess, t2v_manifest, write_png

# A guard against a hang, not a pass condition: generous, so a loaded machine never trips it
# (pytest-timeout stops the test at 120 s; this fires first so the transcript is shown).
TIMEOUT = 100.0
FAST = ["--poll-interval", "0", "--rpm", "60000", "--debounce", "0.2"]
PROMPTS = {"fox": "A red fox in spring", "owl": "An owl at dusk [Push in]", "bear": "A bear in the snow"}


class Watch:
    """A running ``vidbatch watch`` and everything it printed so far."""

    def __init__(self, folder: Path, server: Any, *args: str, json_events: bool = True):
        self.folder = folder.resolve()
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
        self.proc = cli_subprocess(["watch", folder, *FAST, *(["--json"] if json_events else []), *args], env=env)
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._on_stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr.append), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream: Any, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line.rstrip("\n"))

    def _on_stdout(self, line: str) -> None:
        if line.startswith("{"):
            self.events.append(json.loads(line))

    def of(self, kind: str, manifest: str | None = None) -> list[dict]:
        want = str(self.folder / manifest) if manifest else None
        return [e for e in list(self.events) if e["event"] == kind and (want is None or e.get("manifest") == want)]

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            assert self.proc.poll() is None or condition(), f"watch exited ({self.proc.returncode}) waiting for {what}:\n{self.transcript()}"
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}:\n{self.transcript()}")

    def settled_after_plan(self, manifest: str, count: int) -> dict:
        """Wait for the ``count``-th plan of ``manifest`` and the idle that follows it."""

        def done() -> dict | None:
            events = list(self.events)
            plans = [i for i, e in enumerate(events) if e["event"] == "start" and e.get("manifest") == str(self.folder / manifest)]
            if len(plans) < count:
                return None
            if any(e["event"] == "idle" for e in events[plans[count - 1] :]):
                return events[plans[count - 1]]
            return None

        return self.wait_for(done, f"plan #{count} of {manifest} to settle")

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=TIMEOUT)
        for t in self._readers:
            t.join(5)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def transcript(self) -> str:
        return "\n".join([json.dumps(e) for e in self.events][-40:] + ["--- stderr:"] + self.stderr[-40:])


@pytest.fixture
def server():
    with running_simulator(SimConfig(key=TEST_KEY)) as s:
        yield s


@pytest.fixture
def start_watch(tmp_path):
    started: list[Watch] = []

    def start(server: Any, *args: str, folder: Path | None = None, **kw: Any) -> Watch:
        w = Watch(folder or tmp_path / "shots", server, *args, **kw)
        started.append(w)
        w.wait_for(lambda: w.of("watching") or any("watching" in line for line in w.stderr), "the watcher to start")
        return w

    yield start
    for w in started:
        w.close()


def atomic_write(path: Path, text: str) -> None:
    """What careful editors do: write a temporary file beside the target, rename it over."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem + "-", suffix=path.suffix)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def outputs(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in (folder / "renders").glob("*.mp4")}


def test_drop_edit_rename_and_our_own_writes(tmp_path, server, start_watch):
    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a manifest")
    w = start_watch(server)
    assert w.of("watching")[0]["manifests"] == []
    # the note of ignored files is the watcher's next line after "watching": wait for it
    w.wait_for(lambda: w.of("ignored"), "the note of ignored files")
    assert w.of("ignored")[0]["paths"] == [str(folder.resolve() / "notes.txt")]

    # drop a manifest in: its outputs appear
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    plan = w.settled_after_plan("shots.toml", 1)
    assert plan["actions"] == {"submit": 3}
    assert sorted(outputs(folder)) == sorted(PROMPTS)
    for path in outputs(folder).values():
        assert mp4.check_mp4(path) == []
    assert server.sim.calls["create"] == 3

    # edit one prompt with an atomic save: exactly one new create, the others untouched
    before = {name: p.stat().st_mtime_ns for name, p in outputs(folder).items()}
    atomic_write(folder / "shots.toml", t2v_manifest({**PROMPTS, "owl": "An owl at midnight [Push in]"}))
    plan = w.settled_after_plan("shots.toml", 2)
    assert plan["actions"] == {"resubmit": 1, "skip": 2}
    assert server.sim.creates_for("owl at midnight") == 1
    assert server.sim.calls["create"] == 4
    assert mp4.read_sim_metadata(outputs(folder)["owl"])["prompt"] == "An owl at midnight [Push in]"
    after = {name: p.stat().st_mtime_ns for name, p in outputs(folder).items()}
    assert after["fox"] == before["fox"] and after["bear"] == before["bear"]

    # a second manifest is a barrier: events are handled in order, so once its plan settled, any
    # plan our own writes (outputs, state, staging files) could have caused would have shown
    (folder / "other.toml").write_text(t2v_manifest({"cat": "A cat on a wall"}).replace('"renders"', '"renders-other"'))
    w.settled_after_plan("other.toml", 1)
    assert len(w.of("start", "shots.toml")) == 2
    changed = [Path(p) for e in w.of("changed") for p in e["paths"]]
    assert not [p for p in changed if ".vidbatch" in p.parts or p.parent.name.startswith("renders")], changed
    assert not [e for e in w.of("changed") if e["manifest"].endswith(".toml") and "-" in Path(e["manifest"]).stem]

    # rename: the old name is no longer planned, the new one plans to skip (nothing is rendered)
    creates = server.sim.calls["create"]
    os.rename(folder / "other.toml", folder / "renamed.toml")
    plan = w.settled_after_plan("renamed.toml", 1)
    assert plan["actions"] == {"skip": 1}
    assert w.of("removed", "other.toml")
    # delete: reported, no plan
    (folder / "renamed.toml").unlink()
    w.wait_for(lambda: w.of("removed", "renamed.toml"), "the deleted manifest to be reported")
    assert server.sim.calls["create"] == creates
    assert w.proc.poll() is None


def test_replacing_an_image_re_renders_only_the_job_that_uses_it(tmp_path, server, start_watch):
    folder = tmp_path / "shots"
    write_png(folder / "images" / "a.png", color=(200, 80, 40))
    write_png(folder / "images" / "b.png", color=(40, 80, 200))
    write_png(tmp_path / "common" / "c.png", color=(90, 90, 90))  # outside the watched folder
    (folder / "i2v.toml").write_text(
        'output_dir = "renders"\n\n[defaults]\nmodel = "I2V-01-Director"\n\n'
        '[[jobs]]\nname = "a"\nprompt = "Job a: the camera moves"\nfirst_frame_image = "images/a.png"\n\n'
        '[[jobs]]\nname = "b"\nprompt = "Job b: the camera waits"\nfirst_frame_image = "images/b.png"\n\n'
        '[[jobs]]\nname = "c"\nprompt = "Job c: shared image"\nfirst_frame_image = "../common/c.png"\n\n'
        '[[jobs]]\nname = "t"\nmodel = "MiniMax-Hailuo-02"\nprompt = "Job t: text only"\n'
    )
    w = start_watch(server)
    w.settled_after_plan("i2v.toml", 1)
    assert sorted(outputs(folder)) == ["a", "b", "c", "t"]

    def creates() -> dict[str, int]:
        return {p: server.sim.creates_for(f"Job {p}:") for p in "abct"}

    assert creates() == {"a": 1, "b": 1, "c": 1, "t": 1}

    write_png(folder / "images" / "a.png", color=(20, 200, 60))
    plan = w.settled_after_plan("i2v.toml", 2)
    assert plan["actions"] == {"resubmit": 1, "skip": 3}
    assert creates() == {"a": 2, "b": 1, "c": 1, "t": 1}
    change = w.of("changed", "i2v.toml")[-1]
    assert change["paths"] == [str(folder.resolve() / "images" / "a.png")]
    assert mp4.check_mp4(outputs(folder)["a"]) == []

    # an input outside the folder is watched through its own folder
    write_png(tmp_path / "common" / "c.png", color=(250, 250, 10))
    plan = w.settled_after_plan("i2v.toml", 3)
    assert plan["actions"] == {"resubmit": 1, "skip": 3}
    assert creates() == {"a": 2, "b": 1, "c": 2, "t": 1}


def test_broken_manifest_is_reported_and_fixing_it_runs_it(tmp_path, server, start_watch):
    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "good.toml").write_text(t2v_manifest({"fox": "A fox"}))
    w = start_watch(server, json_events=False)
    w.wait_for(lambda: (folder / "renders" / "fox.mp4").exists(), "the good manifest's output")

    # a syntax error: is_manifest_file cannot tell it is a manifest, the watcher still says why
    (folder / "broken.toml").write_text('output_dir = "renders-b"\n[[jobs]]\nname = "owl\n')
    w.wait_for(lambda: any("broken.toml is invalid" in line for line in w.stderr), "the syntax error")
    # then a semantic one: an unknown model
    (folder / "broken.toml").write_text(t2v_manifest({"owl": "An owl"}).replace('"renders"', '"renders-b"').replace("MiniMax-Hailuo-02", "Hailuo-99"))
    w.wait_for(lambda: any("Hailuo-99" in line for line in w.stderr), "the unknown model error")
    assert w.proc.poll() is None, "a broken manifest must not end the watch"
    assert not (folder / "renders-b").exists()

    (folder / "broken.toml").write_text(t2v_manifest({"owl": "An owl"}).replace('"renders"', '"renders-b"'))
    w.wait_for(lambda: (folder / "renders-b" / "owl.mp4").exists(), "the fixed manifest's output")
    assert mp4.check_mp4(folder / "renders-b" / "owl.mp4") == []
    assert server.sim.creates_for("An owl") == 1 and server.sim.creates_for("A fox") == 1
    assert w.proc.poll() is None


def test_ctrl_c_with_a_task_in_flight_then_run_resumes_it(tmp_path, start_watch):
    folder = tmp_path / "shots"
    folder.mkdir()
    manifest = folder / "shots.toml"
    manifest.write_text(t2v_manifest({"fox": "A slow fox"}))
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600)) as server:
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
        w = start_watch(server)
        w.wait_for(lambda: w.of("submitted"), "the task to be created")
        assert len(server.sim.tasks) == 1

        # the watcher holds the state folder: a concurrent run is refused with exit 4
        concurrent = cli_subprocess(["run", manifest, *FAST[:4]], env=env)
        _, err = concurrent.communicate(timeout=TIMEOUT)
        assert concurrent.returncode == 4, err

        started = time.monotonic()
        assert w.interrupt() == 130
        assert time.monotonic() - started < 10, "Ctrl-C must end the watch promptly"
        stderr = "\n".join(w.stderr)
        assert "Resume with: vidbatch run" in stderr and "Traceback" not in stderr

        server.sim.advance(7200)
        resumed = cli_subprocess(["run", manifest, *FAST[:4], "--json"], env=env)
        out, err = resumed.communicate(timeout=TIMEOUT)
        assert resumed.returncode == 0, err
        assert len(server.sim.tasks) == 1, "the task must be resumed, not created again"
        assert server.sim.calls["create"] == 1
        assert mp4.check_mp4(folder / "renders" / "fox.mp4") == []


def test_what_watch_writes_into_its_folder_is_never_a_manifest_nor_a_change(tmp_path, server):
    """``vidbatch watch . --json > events.json``: its events went into a .json file of the folder,
    read as a broken manifest, reported there, which changed it again: a loop, two events a
    second, forever. Its stderr (appended to a log that already mentions ``jobs`` and does not
    parse) and its --report page are its own writes too."""
    folder = tmp_path.resolve() / "shots"
    folder.mkdir()
    (folder / "shots.toml").write_text(t2v_manifest({"fox": PROMPTS["fox"]}))
    (folder / "log.json").write_text('{"jobs": [\n')  # left by an earlier session
    events_file = folder / "events.json"

    def events() -> list[dict]:
        return [json.loads(line) for line in events_file.read_text().splitlines() if line.startswith("{")]

    def settled(manifest: str) -> bool:
        evs = events()
        plans = [i for i, e in enumerate(evs) if e["event"] == "start" and e.get("manifest") == str(folder / manifest)]
        return bool(plans) and any(e["event"] == "idle" for e in evs[plans[0] :])

    env = {**os.environ, "MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
    with open(events_file, "w") as out, open(folder / "log.json", "a") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vidbatch", "watch", ".", *FAST, "--json", "--report", "report.json"], cwd=folder, env=env, stdout=out, stderr=err
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not settled("shots.toml"):
            assert proc.poll() is None and time.monotonic() < deadline, (folder / "log.json").read_text()
            time.sleep(0.05)
        # a second manifest is a barrier: a plan our own writes had caused would have shown first
        (folder / "other.toml").write_text(t2v_manifest({"cat": "A cat on a wall"}).replace('"renders"', '"renders-other"'))
        while not settled("other.toml"):
            assert proc.poll() is None and time.monotonic() < deadline, (folder / "log.json").read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(TIMEOUT)
    evs = events()
    assert evs[0]["event"] == "watching" and evs[0]["manifests"] == [str(folder / "shots.toml")]
    noted = [e for e in evs if e["event"] in ("changed", "invalid", "ignored") and e.get("manifest") != str(folder / "other.toml")]
    assert noted == []
    assert (folder / "report.json").exists() and proc.returncode == 130
    assert server.sim.calls["create"] == 2


def test_temporary_and_hidden_names():
    for name in (".shots.toml.swp", "shots.toml~", "4913", "a.tmp", "clip.mp4.part", ".clip.mp4.vidbatch-new", "#shots.toml#", ".vidbatch"):
        assert is_temporary(name), name
    for name in ("shots.toml", "a.png", "rows.csv", "renders"):
        assert not is_temporary(name), name


def test_an_edit_never_cancels_a_render_in_flight_and_the_output_ends_current(tmp_path, start_watch):
    folder = tmp_path / "shots"
    folder.mkdir()
    manifest = folder / "shots.toml"
    manifest.write_text(t2v_manifest({"fox": "A slow fox"}))
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600)) as server:
        w = start_watch(server)
        w.wait_for(lambda: w.of("submitted"), "the first render to be created")
        atomic_write(manifest, t2v_manifest({"fox": "A quick fox"}))
        plan = w.wait_for(lambda: len(w.of("start", "shots.toml")) == 2 and w.of("start", "shots.toml")[1], "the second plan")
        assert plan["actions"] == {"submit": 1}
        w.wait_for(lambda: len(w.of("submitted")) == 2, "the edited render to be created beside the first")
        assert server.sim.creates_for("A slow fox") == 1 and server.sim.creates_for("A quick fox") == 1

        server.sim.advance(7200)  # both finish; whichever lands last, the output must end current

        def settled() -> bool:
            events = list(w.events)
            return len([e for e in events if e["event"] == "downloaded"]) >= 2 and events[-1]["event"] == "idle"

        w.wait_for(settled, "both renders to be collected")
        assert mp4.read_sim_metadata(folder / "renders" / "fox.mp4")["prompt"] == "A quick fox", w.transcript()
        assert len(server.sim.tasks) == 2, "collecting the old render and fixing the output must not render again"
        assert not w.of("failed") and not w.of("error")


def test_a_deleted_manifest_creates_nothing_more(tmp_path, start_watch):
    """Deleting a manifest drops its renders not created yet (as an edit drops obsolete ones):
    only the render already running is paid for and collected."""
    folder = tmp_path / "shots"
    folder.mkdir()
    manifest = folder / "shots.toml"
    manifest.write_text(t2v_manifest(PROMPTS))
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600)) as server:
        w = start_watch(server, "--concurrency", "1")  # one render in flight, two queued
        w.wait_for(lambda: w.of("submitted"), "the first render to be created")
        manifest.unlink()
        w.wait_for(lambda: w.of("removed", "shots.toml"), "the deletion to be reported")
        w.wait_for(lambda: len(w.of("dropped")) == 2, "the queued renders to be dropped")
        server.sim.advance(7200)
        w.wait_for(lambda: w.of("downloaded") and w.events[-1]["event"] == "idle", "the running render to be collected")
        assert server.sim.calls["create"] == 1, w.transcript()
        assert w.interrupt() == 130
        assert "1 render created in this session" in "\n".join(w.stderr)


def test_an_account_error_ends_the_session_with_exit_3(tmp_path, server, start_watch):
    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    server.sim.inject("create", "code:1008")
    w = start_watch(server, "--concurrency", "1")  # one create on the wire at a time
    assert w.proc.wait(timeout=TIMEOUT) == 3, w.transcript()
    assert w.of("account_stop")
    assert server.sim.calls["create"] == 1, "no create after an account error"
    assert "stopped:" in "\n".join(w.stderr) and "insufficient balance" in "\n".join(w.stderr)


def test_a_lost_state_database_ends_the_session_with_exit_1(tmp_path, server, start_watch):
    """The state folder deleted under a settled watch (``rm -rf .vidbatch``, or the watched folder
    moved away with it): no render can be created any more, so the watch says so and ends, as
    ``run`` does, instead of planning edits it never renders."""
    import shutil

    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    w = start_watch(server)
    w.settled_after_plan("shots.toml", 1)
    shutil.rmtree(folder / ".vidbatch")
    assert w.proc.wait(timeout=TIMEOUT) == 1, w.transcript()
    assert w.of("state_error")
    assert "error: the state folder" in "\n".join(w.stderr), w.transcript()
    assert server.sim.calls["create"] == 3


def test_the_watched_folder_deleted_ends_the_session_with_exit_2(tmp_path, server, start_watch):
    """The watched folder deleted (or moved away) while watching, its state kept elsewhere: the
    watch can see nothing more there (its folder watch follows the old folder), so it says so and
    ends rather than 'watching' a folder that is not there."""
    import shutil

    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    w = start_watch(server, "--state", str(tmp_path / "state"))
    w.settled_after_plan("shots.toml", 1)
    shutil.rmtree(folder)
    assert w.proc.wait(timeout=TIMEOUT) == 2, w.transcript()
    assert f"error: the watched folder {folder.resolve()} is gone" in "\n".join(w.stderr), w.transcript()
    assert server.sim.calls["create"] == 3


def test_max_renders_refuses_one_plan_and_the_watch_goes_on(tmp_path, server, start_watch):
    folder = tmp_path / "shots"
    folder.mkdir()
    w = start_watch(server, "--max-renders", "2")
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))  # 3 renders: over the bound
    w.wait_for(lambda: w.of("refused", "shots.toml"), "the plan to be refused")
    assert server.sim.calls["create"] == 0
    atomic_write(folder / "shots.toml", t2v_manifest({"fox": PROMPTS["fox"]}))
    plan = w.settled_after_plan("shots.toml", 2)
    assert plan["actions"] == {"submit": 1}
    assert server.sim.calls["create"] == 1 and sorted(outputs(folder)) == ["fox"]


def test_report_follows_the_watch(tmp_path, server, start_watch):
    folder = tmp_path / "shots"
    folder.mkdir()
    report = tmp_path / "report.html"
    w = start_watch(server, "--report", str(report))
    (folder / "shots.toml").write_text(t2v_manifest(PROMPTS))
    w.settled_after_plan("shots.toml", 1)
    w.wait_for(lambda: report.exists() and all(f"shots/renders/{name}.mp4" in report.read_text() for name in PROMPTS), "the report to show every video")
    assert w.interrupt() == 130
    final = report.read_text()
    assert "A red fox in spring" in final and "Push in" in final
