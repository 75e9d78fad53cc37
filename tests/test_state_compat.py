"""State compatibility: a state database written by an earlier release opens, migrates and works.

``tests/data/frozen_m001`` is a project rendered by a real ``vidbatch run --sim`` of the release
before migration m002 (fox and owl done, broken failed), with its state dumped as SQL. Each test
copies it into ``tmp_path``, moves its paths there, and drives today's store and CLI over it.
Migrations are also checked one by one from a blank database.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from vidbatch.state import RenderState, Store, migrations

from .helpers import cli

FROZEN = Path(__file__).parent / "data" / "frozen_m001"
FROZEN_ROOT = "/tmp/vbfrozen/proj"  # where the frozen project was rendered (see state.sql)
FAST = ["--poll-interval", "0", "--rpm", "60000", "--sim-latency", "0"]


def frozen_project(folder: Path) -> Path:
    """The frozen project in ``folder`` with its state; returns the manifest."""
    shutil.copytree(FROZEN, folder, ignore=shutil.ignore_patterns("state.sql"))
    state = folder / ".vidbatch" / "sim"
    state.mkdir(parents=True)
    conn = sqlite3.connect(state / "state.db")
    conn.executescript((FROZEN / "state.sql").read_text(encoding="utf-8").replace(FROZEN_ROOT, str(folder)))
    conn.close()
    return folder / "shots.toml"


def file_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_frozen_state_is_at_the_first_schema_with_rows_in_every_table(tmp_path):
    manifest = frozen_project(tmp_path / "proj")
    db = sqlite_utils.Database(manifest.parent / ".vidbatch" / "sim" / "state.db")
    assert [m.name for m in migrations.applied(db)] == ["m001_initial"]
    assert {t: db[t].count for t in ("jobs", "outputs", "events")} == {"jobs": 3, "outputs": 2, "events": 17}


def test_the_frozen_state_migrates_keeping_every_row(tmp_path):
    manifest = frozen_project(tmp_path / "proj")
    store = Store(manifest.parent / ".vidbatch" / "sim")
    assert migrations.pending(store.db) == []
    assert "jobs" not in store.db.table_names() and "jobs" in store.db.view_names()
    assert store.counts() == {"done": 2, "failed": 1}
    assert len(store.all_outputs()) == 2 and len(store.events()) == 17
    broken = next(r for r in store.all_renders() if r.name == "broken")
    # an error written before m002 keeps its whole text, and reads as before
    assert broken.error_call is None and "[call=query" in (broken.error or "") and broken.trace_id
    assert store.db.execute("pragma foreign_key_list(outputs)").fetchone()[2] == "renders"
    assert store.db.execute("pragma foreign_key_check").fetchall() == []
    store.close()


def test_plan_reads_the_frozen_state_without_upgrading_or_writing_it(tmp_path):
    manifest = frozen_project(tmp_path / "proj")
    state = manifest.parent / ".vidbatch" / "sim"
    before = file_digests(state)
    result = cli(["plan", "--json", "--sim", manifest])
    assert result.exit_code == 0, result.output
    actions = {j["name"]: j["action"] for j in json.loads(result.output)["jobs"]}
    assert actions == {"fox": "skip", "owl": "skip", "broken": "failed"}
    assert file_digests(state) == before, "plan wrote to the state folder"
    db = sqlite_utils.Database(state / "state.db")
    assert [m.name for m in migrations.applied(db)] == ["m001_initial"], "a read-only command upgraded the file"


def test_status_shows_the_frozen_jobs_and_their_old_errors(tmp_path):
    manifest = frozen_project(tmp_path / "proj")
    result = cli(["status", "--json", "--sim", manifest])
    assert result.exit_code == 0, result.output
    jobs = {j["name"]: j for j in json.loads(result.output)["jobs"]}
    assert {n: j["state"] for n, j in jobs.items()} == {"fox": "done", "owl": "done", "broken": "failed"}
    assert jobs["fox"]["output_present"] and "simulated render failure" in jobs["broken"]["error"]


def test_run_goes_on_from_the_frozen_state(tmp_path, monkeypatch):
    manifest = frozen_project(tmp_path / "proj")
    monkeypatch.chdir(manifest.parent)
    result = cli(["run", "--sim", manifest, *FAST])
    assert result.exit_code == 1, result.output  # broken stays failed: nothing to do
    assert "0 renders created" in result.output
    retry = cli(["run", "--sim", manifest, *FAST, "--retry-failed", "--force", "fox"])
    assert retry.exit_code == 1, retry.output  # sim-fail fails again, as it should
    store = Store(manifest.parent / ".vidbatch" / "sim")
    assert [m.name for m in migrations.applied(store.db)] == [m.name for m in migrations._migrations]
    fox = next(r for r in store.all_renders() if r.name == "fox")
    broken = next(r for r in store.all_renders() if r.name == "broken")
    assert fox.state is RenderState.DONE and fox.attempts == 2
    assert broken.state is RenderState.FAILED and broken.error_call == "query", "new errors are kept as parts"
    assert [e.event for e in store.events(fox.key)][:4] == ["seen", "submit", "submitted", "status"], "old history kept"


@pytest.mark.parametrize("stop_before", [m.name for m in migrations._migrations[1:]])
def test_each_migration_applies_to_the_schema_before_it(tmp_path, stop_before):
    db = sqlite_utils.Database(tmp_path / "state.db")
    migrations.apply(db, stop_before=stop_before)
    assert migrations.pending(db)[0].name == stop_before
    db.conn.close()
    store = Store(tmp_path)
    assert migrations.pending(store.db) == [] and store.counts() == {}
