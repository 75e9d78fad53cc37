"""One state file, many users: racing starts, read-only folders, other SQLite clients, full disks.

Healthy databases must never be called unusable: two runs started at once on a fresh state
exit 0 or 4 (never "database is locked" or "move it aside"); plan and status read a read-only
folder and write nothing; a write lock held by another client is waited for (the busy timeout),
then named in a StateError; each SQLite failure gets the advice that fits it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import filelock
import pytest

from vidbatch import state as state_module
from vidbatch.errors import StateError, StateLockedError
from vidbatch.state import RenderState, Store, state_error

from .helpers import cli, cli_subprocess, t2v_manifest

FAST = ["--poll-interval", "0", "--rpm", "60000", "--sim-latency", "0"]
PROMPTS = {"fox": "A red fox in snow", "owl": "An owl at dusk [Push in]", "city": "A city at night"}
#: What a healthy database must never be called.
UNHEALTHY = ("Traceback", "database is locked", "already exists", "move it aside", "not a usable")
KEY = "vb1:" + "c" * 64


@pytest.fixture
def project(tmp_path) -> Path:
    path = tmp_path / "proj" / "shots.toml"
    path.parent.mkdir()
    path.write_text(t2v_manifest(PROMPTS))
    return path


def seen(store: Store, key: str = KEY, prompt: str = "p") -> None:
    store.record_seen(key, {"model": "MiniMax-Hailuo-02", "prompt": prompt}, model="MiniMax-Hailuo-02", mode="t2v", duration=6, resolution="768P", prompt=prompt, name="job")


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file in ``folder``, except SQLite's -wal/-shm companions (a
    reader of a WAL database may create them; they hold no data of their own)."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


# --- racing starts ------------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(3))
def test_runs_and_a_plan_started_at_once_on_a_fresh_state_never_call_it_unusable(project, round_):
    commands = [["run", "--sim", project, *FAST], ["plan", "--sim", project], ["run", "--sim", project, *FAST]]
    procs = [cli_subprocess(args, cwd=project.parent) for args in commands]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for args, (code, out, err) in zip(commands, results):
        assert not any(bad in out + err for bad in UNHEALTHY), f"{args[0]}: {err}"
        assert code in ((0, 4) if args[0] == "run" else (0,)), f"{args[0]} exited {code}: {err}"
    assert 0 in (results[0][0], results[2][0]), "one of the runs did the work"
    store = Store(project.parent / ".vidbatch" / "sim")
    assert store.counts() == {"done": 3}


def test_migrations_wait_for_the_run_lock(tmp_path):
    holder = filelock.FileLock(str(tmp_path / "run.lock"))
    with holder:
        with pytest.raises(StateLockedError):
            Store(tmp_path, busy_timeout=0.05)
        tables = sqlite3.connect(tmp_path / "state.db").execute("select name from sqlite_master").fetchall()
        assert tables == [], "a migration ran without the run lock"
    store = Store(tmp_path)
    assert "renders" in store.db.table_names()


def test_a_second_store_on_a_migrated_state_needs_no_lock(tmp_path):
    Store(tmp_path).close()
    with filelock.FileLock(str(tmp_path / "run.lock")):
        store = Store(tmp_path, busy_timeout=0.05)  # opens (a run would then exit 4 at run_lock)
        with pytest.raises(StateLockedError):
            with store.run_lock():
                pass


# --- read-only commands ---------------------------------------------------------------------------


def test_plan_and_status_write_nothing(project, sim_env):
    assert cli(["run", project, *FAST]).exit_code == 0
    state = project.parent / ".vidbatch"
    before = snapshot(state)
    for args in (["plan", project], ["plan", "--json", project], ["status", project], ["status", "--json", project], ["status", "--job", "fox", project], ["report", project]):
        result = cli(args)
        assert result.exit_code == 0, result.output
    assert snapshot(state) == before


def test_a_read_only_store_refuses_to_write(project, sim_env):
    assert cli(["run", project, *FAST]).exit_code == 0
    store = Store.open_for_reading(project.parent / ".vidbatch")
    assert store is not None
    with pytest.raises(StateError, match="cannot write"):
        seen(store, "vb1:" + "d" * 64)


@contextlib.contextmanager
def read_only_view(folder: Path, at: Path) -> Iterator[Path]:
    """``folder`` mounted read-only at ``at`` (a bind mount: root is refused too). Skips the
    test where mounting is not allowed."""
    at.mkdir()
    if subprocess.run(["mount", "--bind", str(folder), str(at)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root with CAP_SYS_ADMIN)")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(at)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield at
    finally:
        if subprocess.run(["umount", str(at)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(at)], check=True)
            pytest.fail("a file in the read-only folder was left open")


def test_plan_and_status_work_in_a_read_only_folder_and_run_says_why_it_cannot(project, sim_env, tmp_path):
    assert cli(["run", project, *FAST]).exit_code == 0
    with read_only_view(project.parent, tmp_path / "ro") as ro:
        manifest = ro / project.name
        plan = cli(["plan", "--json", manifest])
        assert plan.exit_code == 0, plan.output
        assert {j["action"] for j in json.loads(plan.output)["jobs"]} == {"skip"}
        status = cli(["status", manifest])
        assert status.exit_code == 0 and "3 done" in status.output, status.output
        run = cli(["run", manifest, *FAST])
        assert run.exit_code == 1 and "writable" in run.output and "--state" in run.output, run.output
        assert not any(bad in run.output for bad in UNHEALTHY)


def test_an_old_state_in_a_read_only_folder_is_read_through_a_migrated_copy(tmp_path):
    # a state at m001 needs migrations; plan must not apply them to the file
    folder = tmp_path / "st"
    folder.mkdir()
    conn = sqlite3.connect(folder / "state.db")
    conn.executescript((Path(__file__).parent / "data" / "state_m001.sql").read_text())
    conn.close()
    before = snapshot(folder)
    store = Store.open_for_reading(folder)
    assert store is not None and store.counts() == {"running": 1}
    store.close()
    assert snapshot(folder) == before


# --- other SQLite clients -----------------------------------------------------------------------------


@pytest.fixture
def held_write_lock(tmp_path) -> Iterator[sqlite3.Connection]:
    """A second connection (as a sqlite3 shell would) holding the write lock of a state at ``tmp_path``."""
    store = Store(tmp_path)
    seen(store)
    store.close()
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def test_a_write_lock_held_by_another_client_ends_in_a_state_error_naming_it(tmp_path, held_write_lock):
    store = Store(tmp_path, busy_timeout=0.05)
    assert store.get(KEY) is not None, "reading goes on under another client's write lock (WAL)"
    with pytest.raises(StateError, match="locked by another connection for 0.05 s") as info:
        store.record_intent(KEY, name="job")
    assert "sqlite3" in str(info.value) and not isinstance(info.value, StateLockedError)
    held_write_lock.execute("ROLLBACK")
    assert store.record_intent(KEY, name="job").state is RenderState.SUBMITTING, "the store works once the lock is gone"


def test_a_write_lock_released_within_the_busy_timeout_is_waited_for(tmp_path, held_write_lock):
    store = Store(tmp_path, busy_timeout=30)
    released = threading.Timer(0.1, held_write_lock.execute, ["COMMIT"])
    released.start()
    try:
        assert store.record_intent(KEY, name="job").state is RenderState.SUBMITTING
    finally:
        released.cancel()


def test_a_run_under_another_clients_write_lock_fails_cleanly(project, monkeypatch):
    assert cli(["run", "--sim", project, *FAST]).exit_code == 0
    project.write_text(t2v_manifest({**PROMPTS, "new": "Something new"}))
    monkeypatch.setattr(state_module, "BUSY_TIMEOUT", 0.05)
    other = sqlite3.connect(project.parent / ".vidbatch" / "sim" / "state.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        result = cli(["run", "--sim", project, *FAST])  # a traceback would raise here
    finally:
        other.execute("ROLLBACK")
    assert result.exit_code == 1, result.output
    assert "error: the state database" in result.output and "locked by another connection" in result.output
    assert cli(["run", "--sim", project, *FAST]).exit_code == 0, "nothing was left half-done"


# --- advice that fits the cause -------------------------------------------------------------------


def test_a_full_disk_is_called_a_full_disk(tmp_path):
    store = Store(tmp_path)
    pages = store.db.execute("pragma page_count").fetchone()[0]
    store.db.execute(f"pragma max_page_count = {pages}")  # SQLite's own way to run out of room
    with pytest.raises(StateError, match="is full; free some space") as info:
        for i in range(200):
            seen(store, f"vb1:{i:064d}", prompt="x" * 2000)
    assert "not a usable" not in str(info.value)


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (sqlite3.OperationalError("database is locked"), "locked by another connection"),
        (sqlite3.OperationalError("database or disk is full"), "is full"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "writable"),
        (sqlite3.OperationalError("disk I/O error"), "check the disk"),
        (sqlite3.DatabaseError("file is not a database"), "move it aside"),
        (OSError(28, "No space left on device"), "free space"),
    ],
)
def test_each_failure_gets_its_own_advice(tmp_path, error, advice):
    message = str(state_error(tmp_path / "state.db", error))
    assert advice in message and str(tmp_path) in message
