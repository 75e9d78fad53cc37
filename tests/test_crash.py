"""Crash safety, with a real `vidbatch run` process killed at random points.

The simulator runs in this process; the run is a subprocess talking to it over loopback HTTP.
Kill points are drawn at random (seeded) among the run's own event boundaries and inside slowed
create calls. Whatever point a kill lands on, the assertions are invariants: they do not depend on
timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import threading
import time

import pytest

from vidbatch import mp4
from vidbatch.sim import SimConfig, running_simulator
from vidbatch.state import Store

from .conftest import TEST_KEY
from .helpers import cli, cli_subprocess, creates, json_events, t2v_manifest

PROMPTS = {f"shot{i:02d}": f"Crash test shot {i:02d}" for i in range(8)}


def _env(server):
    return {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}


def _kill_after(proc, events: int, rng: random.Random) -> int:
    """Read `events` JSON event lines from a running `vidbatch run --json`, then SIGKILL it."""
    seen = 0
    while seen < events:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_points_never_pays_twice_or_loses_a_render(tmp_path, seed):
    rng = random.Random(seed)
    manifest = tmp_path / "crash.toml"
    manifest.write_text(t2v_manifest(PROMPTS))
    uncertain: set[str] = set()
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        env = _env(server)
        for _ in range(4):
            # slow some creates so that kills also land while a create is on the wire
            server.sim.inject("create", "slow", times=2, seconds=0.05)
            proc = cli_subprocess(["run", manifest, "--json", "--poll-interval", "0", "--rpm", "60000", "--concurrency", "4"], env=env)
            _kill_after(proc, rng.randint(1, 30), rng)
            status = json.loads(cli(["status", manifest, "--json"], env=env).output)
            # a job left "submitting" is settled by the next start: running when the task-id
            # journal kept its answer, else uncertain (and uncertain stays until resubmitted)
            uncertain |= {j["name"] for j in status["jobs"] if j["state"] == "uncertain"}

        # a clean run finishes everything that is not uncertain, creating nothing twice
        final = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000"], env=env)
        status = json.loads(cli(["status", manifest, "--json"], env=env).output)
        uncertain |= {j["name"] for j in status["jobs"] if j["state"] == "uncertain"}
        assert final.exit_code == (1 if uncertain else 0), final.output

        for name, prompt in PROMPTS.items():
            made = server.sim.creates_for(prompt)
            if name in uncertain:
                assert made <= 1, f"{name}: uncertain, but created {made} times"
            else:
                assert made == 1, f"{name}: created {made} times"
                out = tmp_path / "renders" / f"{name}.mp4"
                assert mp4.check_mp4(out) == [], name
                assert mp4.read_sim_metadata(out)["prompt"] == prompt

        # the user's choice for uncertain jobs: create them again, knowingly
        resolved = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000", "--resubmit-uncertain"], env=env)
        assert resolved.exit_code == 0, resolved.output
        for name, prompt in PROMPTS.items():
            assert mp4.read_sim_metadata(tmp_path / "renders" / f"{name}.mp4")["prompt"] == prompt
            assert server.sim.creates_for(prompt) <= (2 if name in uncertain else 1)
    assert not [p for p in (tmp_path / "renders").glob(".*") if p.name != ".vidbatch-index.json"], "no partial files left beside outputs"


def test_ctrl_c_saves_running_tasks_and_the_next_run_resumes_them(tmp_path):
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "Slow shot A", "b": "Slow shot B"}))
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600)) as server:
        env = _env(server)
        proc = cli_subprocess(["run", manifest, "--json", "--poll-interval", "0.05", "--rpm", "60000"], env=env)
        submitted = 0
        while submitted < 2:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            submitted += json.loads(line)["event"] == "submitted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Resume with: vidbatch run" in err
        assert "Traceback" not in err
        assert len(server.sim.tasks) == 2
        store = Store(tmp_path / ".vidbatch")
        assert store.counts() == {"running": 2}
        store.close()

        server.sim.advance(7200)  # the renders finish while nobody watches
        result = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000"], env=env)
        assert result.exit_code == 0, result.output
        assert len(server.sim.tasks) == 2, "resumed, not recreated"
        for name in ("a", "b"):
            assert mp4.check_mp4(tmp_path / "renders" / f"{name}.mp4") == []


def test_sigterm_is_taken_as_ctrl_c_and_the_create_on_the_wire_is_saved(tmp_path):
    """docker stop, systemd and timeout send SIGTERM: the run stops as on Ctrl-C, waiting for the
    answer of the create it has sent, instead of dying with that create uncertain."""
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A shot stopped by SIGTERM"}))
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600)) as server:
        env = _env(server)
        server.sim.inject("create", "slow", seconds=1.0)  # the task is made at once, its answer a second later
        proc = cli_subprocess(["run", manifest, "--json", "--poll-interval", "0.05", "--rpm", "60000"], env=env)
        deadline = time.monotonic() + 60  # a hang guard, not a pass condition
        while not server.sim.tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.sim.tasks, "the create reached the simulator"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Resume with: vidbatch run" in err
        assert "Traceback" not in err
        store = Store(tmp_path / ".vidbatch")
        assert store.counts() == {"running": 1}, "the task id was saved, not left uncertain"
        store.close()

        server.sim.advance(7200)
        result = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000"], env=env)
        assert result.exit_code == 0, result.output
        assert len(server.sim.tasks) == 1, "resumed, not created again"


# A Ctrl-C the moment a command starts: Python's own handler is in place while the command line
# imports click and the command (a tenth of a second or more). This sitecustomize sends the
# process a real SIGINT when that import begins.
CTRL_C_AT_IMPORT = """
import os, signal, sys

class CtrlCAt:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlCAt())
"""


@pytest.mark.parametrize("module", ["json", "click"])
def test_a_ctrl_c_while_the_command_starts_up_exits_130_without_a_traceback(tmp_path, module):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CTRL_C_AT_IMPORT.format(module=module))
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "Never started"}))
    env = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    proc = cli_subprocess(["run", manifest], env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == "interrupted\n"
    assert not (tmp_path / ".vidbatch").exists()


def _next_events(proc, kind: str, seen: list[dict], seconds: float = 60.0) -> dict:
    """Read the events of a running `vidbatch run --json` into ``seen`` up to the next of ``kind``;
    a run that has not sent it in ``seconds`` is killed (a hang guard, not a pass condition)."""
    guard = threading.Timer(seconds, proc.kill)
    guard.start()
    try:
        while True:
            line = proc.stdout.readline()
            assert line, f"the run ended (or was killed after {seconds:.0f} s) before a {kind} event: {proc.stderr.read()}"
            if line.startswith("{"):
                seen.append(json.loads(line))
                if seen[-1]["event"] == kind:
                    return seen[-1]
    finally:
        guard.cancel()


def _run_until_submitted(manifest, env, seen: list[dict]):
    """A run of ``manifest``'s two slow renders, once both are created."""
    proc = cli_subprocess(["run", manifest, "--json", "--poll-interval", "0.05", "--rpm", "60000"], env=env)
    for _ in range(2):
        _next_events(proc, "submitted", seen)
    return proc


@contextlib.contextmanager
def _two_slow_renders(tmp_path):
    """A simulator, and a `run --json` of two slow renders once both are created: (manifest, its
    state folder, the simulator, the environment, the run, the events read so far)."""
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "Slow shot A", "b": "Slow shot B"}))
    with running_simulator(SimConfig(key=TEST_KEY, latency=3600)) as server:
        env = _env(server)
        seen: list[dict] = []
        yield manifest, tmp_path / ".vidbatch", server, env, _run_until_submitted(manifest, env, seen), seen


def test_a_state_folder_deleted_under_a_run_is_put_back_and_no_render_is_paid_twice(tmp_path):
    with _two_slow_renders(tmp_path) as (manifest, state, server, env, proc, seen):
        shutil.rmtree(state)  # rm -rf .vidbatch while both tasks render
        lost = _next_events(proc, "state_error", seen)
        assert str(state) in lost["message"] and "put back" in lost["message"]
        store = Store.open_for_reading(state)
        assert store is not None, "the database is back in its folder"
        assert store.counts() == {"running": 2}, "with the task ids of the renders paid for"
        store.close()
        second = cli(["run", manifest], env=env)
        assert second.exit_code == 4, "the run lock is held again: no second run starts on the folder"

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        assert [e["event"] for e in seen + json_events(out)].count("state_error") == 1, "said once"

        server.sim.advance(7200)
        result = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000"], env=env)
        assert result.exit_code == 0, result.output
        assert creates(server) == 2, "resumed, not paid for again"
        for name in ("a", "b"):
            assert mp4.check_mp4(tmp_path / "renders" / f"{name}.mp4") == []


def test_a_state_folder_that_cannot_be_put_back_stops_creating_and_lists_the_task_ids(tmp_path):
    with _two_slow_renders(tmp_path) as (manifest, state, server, env, proc, seen):
        shutil.rmtree(state)
        state.write_text("not a folder")  # the folder cannot be made again (as under a read-only parent)
        lost = _next_events(proc, "state_error", seen)
        assert "could not be put back" in lost["message"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        tasks = sorted(server.sim.tasks)
        assert sorted(e["task_id"] for e in json_events(out) if e["event"] == "unsaved") == tasks, "every task of the lost state is reported"
        assert "NOT saved, note them" in err and all(t in err for t in tasks)
        assert "running tasks are saved" not in err
        assert creates(server) == 2
