"""A simulator with a data folder keeps its tasks across processes, as MiniMax keeps them after a
client crashed: a second simulator on the same folder answers for the first one's tasks, serves
their files again, and lets their progress go on with the wall clock.

No sleeps: time between "processes" passes on an injected wall clock or with ``advance()``.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import urllib.parse

import pytest
import requests

from vidbatch import facts, mp4
from vidbatch.errors import StateError
from vidbatch.sim import SimConfig, running_simulator
from vidbatch.sim.store import DB_NAME

from .conftest import TEST_KEY
from .helpers import cli, cli_subprocess, t2v_manifest
from .test_sim import REQUESTS, create, query, retrieve


class FakeWall:
    """Unix time that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def on(folder, **kw) -> SimConfig:
    return SimConfig(key=TEST_KEY, data_dir=folder, **kw)


def download(url: str, out) -> bytes:
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    out.write_bytes(r.content)
    assert mp4.check_mp4(out) == []
    return r.content


def test_a_task_created_by_one_simulator_is_finished_and_downloaded_by_the_next(tmp_path):
    data = tmp_path / "server"
    with running_simulator(on(data, latency=100)) as first:
        task_id = create(first, REQUESTS["t2v"])["task_id"]
        assert query(first, task_id)["status"] == "Preparing"
        first.sim.advance(50)  # the clock offset is kept with the tasks
    assert (data / DB_NAME).is_file()

    with running_simulator(on(data, latency=0)) as second:  # latency is each task's own, fixed at create
        assert list(second.sim.tasks) == [task_id] and second.sim.stats()["creates"] == 0
        assert query(second, task_id)["status"] == "Processing"
        second.sim.advance(50)
        done = query(second, task_id)
        assert done["status"] == "Success" and (done["video_width"], done["video_height"]) == (1366, 768)
        file = retrieve(second, done["file_id"])["file"]
        data_bytes = download(file["download_url"], tmp_path / "a.mp4")
        assert len(data_bytes) == file["bytes"]
        assert mp4.read_sim_metadata(tmp_path / "a.mp4")["task_id"] == task_id


def test_progress_goes_on_with_the_wall_clock_between_processes(tmp_path):
    wall = FakeWall()
    with running_simulator(on(tmp_path, latency=100, wall_clock=wall)) as first:
        task_id = create(first, REQUESTS["t2v"])["task_id"]
    wall.now += 40  # nobody runs a simulator meanwhile
    with running_simulator(on(tmp_path, wall_clock=wall)) as second:
        assert query(second, task_id)["status"] == "Processing"
    wall.now += 60
    with running_simulator(on(tmp_path, wall_clock=wall)) as third:
        assert query(third, task_id)["status"] == "Success"


def test_a_finished_file_can_be_downloaded_again_later_with_a_refreshed_url(tmp_path):
    with running_simulator(on(tmp_path, url_ttl=60)) as first:
        task_id = create(first, REQUESTS["t2v"])["task_id"]
        file_id = query(first, task_id)["file_id"]
        old = retrieve(first, file_id)["file"]
        original = download(old["download_url"], tmp_path / "first.mp4")

    with running_simulator(on(tmp_path, url_ttl=60)) as later:
        # the old URL names the old port; moved to the new one, its signature still holds
        moved = urllib.parse.urlsplit(old["download_url"])._replace(netloc=f"{later.host}:{later.port}").geturl()
        assert requests.get(moved, timeout=10).content == original
        later.sim.advance(61)
        expired = requests.get(moved, timeout=10)
        assert expired.status_code == 403 and b"expired" in expired.content
        fresh = retrieve(later, file_id)["file"]
        assert fresh["download_url"] != old["download_url"] and fresh["bytes"] == old["bytes"]
        assert fresh["created_at"] == old["created_at"]
        assert download(fresh["download_url"], tmp_path / "again.mp4") == original
        content = requests.get(
            later.base_url + facts.PATH_RETRIEVE_CONTENT,
            params={"file_id": file_id},
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            timeout=10,
        )
        assert content.content == original


def test_unknown_ids_and_other_accounts_still_get_not_found(tmp_path):
    with running_simulator(SimConfig(data_dir=tmp_path)) as first:  # any key; tasks belong to theirs
        task_id = create(first, REQUESTS["t2v"], key="alice")["task_id"]
        file_id = query(first, task_id, key="alice")["file_id"]
    with running_simulator(SimConfig(data_dir=tmp_path)) as second:
        assert query(second, task_id, key="alice")["status"] == "Success"
        for answer in (query(second, "123456789012345", key="alice"), query(second, task_id, key="bob")):
            assert answer["base_resp"]["status_code"] == 2013 and "status" not in answer
            assert "not found" in answer["base_resp"]["status_msg"]
        assert retrieve(second, file_id, key="bob")["base_resp"]["status_code"] == 2013
        assert retrieve(second, "999", key="alice")["base_resp"]["status_code"] == 2013
    raw = (tmp_path / DB_NAME).read_bytes()
    assert b"alice" not in raw and b"bob" not in raw, "keys are never stored"


def test_failed_tasks_stay_failed(tmp_path):
    with running_simulator(on(tmp_path)) as first:
        task_id = create(first, {"model": "T2V-01", "prompt": "a sim-flag-output shot"})["task_id"]
    with running_simulator(on(tmp_path)) as second:
        answer = query(second, task_id)
        assert answer["status"] == "Fail" and answer["base_resp"]["status_code"] == 1027


def test_a_simulator_that_takes_any_key_hands_out_the_same_key_each_time(tmp_path):
    with running_simulator(SimConfig(data_dir=tmp_path)) as first, running_simulator(SimConfig()) as memory:
        key = first.key
        assert key != memory.key
    with running_simulator(SimConfig(data_dir=tmp_path)) as second:
        assert second.key == key


def test_two_simulators_share_one_folder_at_once(tmp_path):
    with running_simulator(on(tmp_path, latency=10)) as a, running_simulator(on(tmp_path, latency=10)) as b:
        ids = [create(server, REQUESTS["t2v"])["task_id"] for server in (a, b, a, b)]
        assert len(set(ids)) == 4
        assert sorted(a.sim.tasks) == sorted(b.sim.tasks) == sorted(ids)
        a.sim.advance(10)  # one clock for the folder
        assert {query(b, task_id)["status"] for task_id in ids} == {"Success"}
        assert (a.sim.stats()["creates"], b.sim.stats()["creates"], b.sim.stats()["tasks"]) == (2, 2, 4)


def test_a_killed_simulator_process_loses_nothing_it_answered(tmp_path):
    data = tmp_path / "data"
    proc = cli_subprocess(["sim", "--port", "0", "--key", TEST_KEY, "--data", data])
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), proc.stderr.read()

        class Remote:
            pass

        remote = Remote()
        remote.base_url = base_url
        ids = [create(remote, {"model": "T2V-01", "prompt": f"shot {i}"})["task_id"] for i in range(5)]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    with running_simulator(on(data)) as after:
        assert list(after.sim.tasks) == ids
        assert [query(after, task_id)["status"] for task_id in ids] == ["Success"] * 5
        assert after.sim.creates_for("shot 3") == 1


def test_sim_command_reports_its_data_folder(tmp_path):
    with running_simulator(on(tmp_path)) as first:
        create(first, REQUESTS["t2v"])
    proc = cli_subprocess(["sim", "--port", "0", "--key", TEST_KEY, "--data", tmp_path])
    lines = []
    try:
        assert proc.stdout.readline().startswith("http://")
        while not lines or "Ctrl-C stops" not in lines[-1]:  # serving: a signal now stops it cleanly
            lines.append(proc.stderr.readline())
            assert lines[-1], lines
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert f"tasks kept in {tmp_path} (1 so far)\n" in lines and "Traceback" not in err


def test_a_folder_that_is_not_a_simulator_store_is_refused_with_a_hint(tmp_path):
    (tmp_path / DB_NAME).write_text("not a database, but somebody's notes\n" * 100)
    with pytest.raises(StateError, match="give the simulator an empty folder"):
        with running_simulator(on(tmp_path)):
            pass
    result = cli(["sim", "--port", "0", "--data", tmp_path])
    assert result.exit_code != 0 and "empty folder" in result.output


def test_a_store_from_a_newer_vidbatch_is_refused(tmp_path):
    with running_simulator(on(tmp_path)):
        pass
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StateError, match="newer vidbatch"):
        with running_simulator(on(tmp_path)):
            pass


def test_ctrl_c_then_a_restarted_simulator_resumes_and_downloads_again(tmp_path):
    """The product's view: a run stopped with Ctrl-C while its tasks render is resumed against a
    new simulator process on the same data folder; a deleted output is fetched again, unpaid."""
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "Kept shot A", "b": "Kept shot B"}))
    data = tmp_path / ".vidbatch" / "server"
    run = ["run", manifest, "--poll-interval", "0", "--rpm", "60000"]
    with running_simulator(on(data, latency=3600)) as first:
        env = {"MINIMAX_API_HOST": first.base_url, "MINIMAX_API_KEY": TEST_KEY}
        proc = cli_subprocess([*run, "--json", "--poll-interval", "0.05"], env=env)
        submitted = 0
        while submitted < 2:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            submitted += json.loads(line)["event"] == "submitted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        first.sim.advance(7200)  # the renders finish while nobody watches

    with running_simulator(on(data)) as second:
        env = {"MINIMAX_API_HOST": second.base_url, "MINIMAX_API_KEY": TEST_KEY}
        result = cli(run, env=env)
        assert result.exit_code == 0, result.output
        assert second.sim.stats()["creates"] == 0 and len(second.sim.tasks) == 2, "resumed, not recreated"
        for name in ("a", "b"):
            assert mp4.check_mp4(tmp_path / "renders" / f"{name}.mp4") == []

    (tmp_path / "renders" / "a.mp4").unlink()
    with running_simulator(on(data)) as third:
        env = {"MINIMAX_API_HOST": third.base_url, "MINIMAX_API_KEY": TEST_KEY}
        result = cli(run, env=env)
        assert result.exit_code == 0, result.output
        assert third.sim.stats()["creates"] == 0 and third.sim.calls["retrieve"] >= 1
        assert mp4.read_sim_metadata(tmp_path / "renders" / "a.mp4")["prompt"] == "Kept shot A"
