"""The no-op fast path (issue 15): what it answers is what the normal path answers, byte for byte,
and every case it must not answer goes to the normal path.

The identity tests run each command in a child twice: through ``vidbatch.cli.main`` (the fast
path, proved taken by click never being imported) and through the click group alone (the normal
path), and compare stdout, stderr and the exit code, and that neither wrote to the state, the
outputs index or the job cache. The fall-through tests make each case, assert that
:func:`vidbatch.noop.check` declines it for the reason expected (so the test can fail), and that
the command then does what the normal path does.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidbatch import noop
from vidbatch.cli import fast

from .conftest import TEST_KEY
from .helpers import cli, t2v_manifest, write

ROOT = Path(__file__).resolve().parent.parent
RUN = ["--poll-interval", "0", "--rpm", "60000"]

#: the command line in a child: through vidbatch.cli.main (fast path first) or the click group
#: alone; prints on stderr, last, whether click was imported
CHILD = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('CLICK %s\\n' % ('click' in sys.modules)))\n"
    "from vidbatch import cli\n"
    "sys.argv = ['vidbatch'] + sys.argv[1:]\n"
    "cli.main() if sys.argv[1:2] != ['--normal'] else (sys.argv.pop(1), cli.click_group().main())\n"
)


def child(args: list[str], cwd: Path, *, normal: bool = False) -> tuple[int, str, str, bool]:
    """(exit code, stdout, stderr, whether click was imported) of ``vidbatch ARGS`` in a child."""
    argv = (["--normal"] if normal else []) + [str(a) for a in args]
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    *err, last = proc.stderr.splitlines(keepends=True)
    assert last.startswith("CLICK "), proc.stderr
    return proc.returncode, proc.stdout, "".join(err), last.strip() == "CLICK True"


def written(folder: Path) -> tuple:
    """What a no-op must leave as it was: the state's rows, and every file but the database's own."""
    conn = sqlite3.connect(folder / ".vidbatch" / "state.db")
    try:
        rows = tuple(tuple(conn.execute(f"select * from {table} order by 1")) for table in ("renders", "outputs", "events", "videos"))
    finally:
        conn.close()
    files = sorted(
        # the task-id journal is emptied at every run's end, even an empty one: its size counts
        (str(p.relative_to(folder)), p.stat().st_mtime_ns if p.name != "task-ids.journal" else 0, p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith("state.db") and p.name != "run.lock"
    )
    return rows, files


@pytest.fixture
def finished(tmp_path, sim_env, monkeypatch):
    """A folder with two finished manifests (the current folder): shots.toml (a, b, c; b and c
    share one render) and more.toml (d, which shares a's render, and e, into another folder)."""
    folder = tmp_path / "p"
    write(folder, "shots.toml", t2v_manifest({"a": "A red fox", "b": "A blue fox", "c": "A blue fox"}))
    write(folder, "more.toml", t2v_manifest({"d": "A red fox", "e": "A green fox"}).replace('output_dir = "renders"', 'output_dir = "../elsewhere"'))
    monkeypatch.chdir(folder)
    assert cli("run", "shots.toml", "more.toml", *RUN).exit_code == 0
    assert cli("run", "shots.toml", *RUN).exit_code == 0  # the entry for shots.toml alone
    return folder


def same_both_ways(args: list[str], folder: Path) -> tuple[int, str, str]:
    before = written(folder)
    fast_result = child(args, folder)
    assert fast_result[3] is False, f"the fast path did not answer {args}: {fast_result[2]}"
    assert written(folder) == before, "the fast path wrote something"
    normal = child(args, folder, normal=True)
    assert normal[3] is True
    assert written(folder) == before, "the normal path wrote something: this is no no-op"
    assert fast_result[:3] == normal[:3]
    return fast_result[:3]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "shots.toml", *RUN],
        ["run", "./shots.toml", "more.toml", "-j", "4", "--yes", "--max-renders=0", "--wait", "--retry-failed"],
        ["plan", "--check", "shots.toml"],
        ["plan", "shots.toml", "more.toml", "--check", "--retry-failed"],
    ],
)
def test_a_no_op_prints_and_exits_exactly_as_the_normal_path(finished, args):
    code, out, err = same_both_ways(args, finished)
    assert code == 0 and out == ""
    if args[0] == "run":
        assert "0 renders created in this run" in err


def test_clicks_test_runner_goes_through_the_fast_path_too(finished, monkeypatch):
    """``CliRunner().invoke(main, ...)`` calls ``main.main``: in-process tests see the fast path."""
    from click.testing import CliRunner

    from vidbatch.cli import click_group

    answered = []
    real = noop.check
    monkeypatch.setattr(noop, "check", lambda *a, **kw: answered.append(real(*a, **kw)) or answered[-1])
    fast_result = cli("run", "shots.toml", *RUN)
    assert len(answered) == 1 and answered[0].jobs == 3
    normal = CliRunner().invoke(click_group(), ["run", "shots.toml", *RUN])
    assert len(answered) == 1, "the click group alone never asks"
    assert (fast_result.exit_code, fast_result.stdout, fast_result.stderr) == (normal.exit_code, normal.stdout, normal.stderr)


def test_the_run_lines_name_every_job_and_folder(finished):
    _, _, err = same_both_ways(["run", str(finished / "shots.toml"), "more.toml", *RUN], finished)
    assert err.splitlines() == [
        "vidbatch: 5 jobs, 0 to render",
        "vidbatch: done 5/5 · running 0 · queued 0 · 00:00 elapsed",
        "vidbatch: 0 renders created in this run",
        f"vidbatch: all 5 jobs done; outputs in {finished.parent / 'elsewhere'}, renders",
    ]


def test_one_job_is_one_job_both_ways(finished):
    write(finished, "one.toml", t2v_manifest({"f": "A lone fox"}))
    first = cli("run", "one.toml", *RUN)
    assert first.exit_code == 0 and "vidbatch: 1 job, 1 to render" in first.stderr, first.stderr
    assert cli("run", "one.toml", *RUN).exit_code == 0  # its entry in the job cache
    _, _, err = same_both_ways(["run", "one.toml", *RUN], finished)
    assert err.splitlines()[0] == "vidbatch: 1 job, 0 to render"


def test_a_key_from_the_config_file_is_answered_too(finished, monkeypatch):
    """The config file is read by vidbatch.config itself; the job cache counts it as an input, so
    the first run after it appeared is a miss (and writes the entry)."""
    _config(f'api_key = "{TEST_KEY}"\napi_host = "{os.environ["MINIMAX_API_HOST"]}"\n')
    monkeypatch.delenv("MINIMAX_API_KEY")
    monkeypatch.delenv("MINIMAX_API_HOST")
    assert cli("run", "shots.toml", *RUN).exit_code == 0
    same_both_ways(["run", "shots.toml", *RUN], finished)


def test_a_var_is_part_of_the_answer(finished):
    write(finished, "vars.toml", 'output_dir = "v"\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n[[jobs]]\nname = "one"\nprompt = "A {{ colour }} fox"\n')
    assert cli("run", "vars.toml", "--var", "colour=green", *RUN).exit_code == 0
    same_both_ways(["run", "vars.toml", "--var", "colour=green", *RUN], finished)
    code, _, _, imported = child(["plan", "--check", "vars.toml", "--var", "colour=red"], finished)
    assert (code, imported) == (1, True), "another value: the normal path plans a render"


# --- what the fast path must not answer ----------------------------------------------------------


def declined(args: list[str]) -> str:
    """Why noop.check declines the ``run`` (or ``plan --check``) ``args`` (fails if it answers)."""
    command, manifests, variables = fast.parse(args) or pytest.fail(f"{args} did not parse")
    with pytest.raises(noop.Declined) as e:
        noop.check(manifests, variables, run=command == "run")
    return str(e.value)


def test_a_deleted_output_is_downloaded_again(finished):
    (finished / "renders" / "a.mp4").unlink()
    assert "job a: its output file is missing" in declined(["run", "shots.toml"])
    assert "job a: its output file is missing" in declined(["plan", "--check", "shots.toml"])
    assert cli("plan", "--check", "shots.toml").exit_code == 1
    result = cli("run", "shots.toml", *RUN)
    assert result.exit_code == 0 and "a  renders/a.mp4" in result.output, "copied back from d, which holds the same video"


@pytest.mark.parametrize("change", ["size", "mtime"])
def test_a_changed_output_is_not_a_no_op(finished, change):
    path = finished / "renders" / "b.mp4"
    if change == "size":
        path.write_bytes(path.read_bytes() + b"x")
    else:
        os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert "job b: its output file changed (size or mtime)" in declined(["run", "shots.toml"])
    before = written(finished)
    result = cli("run", "shots.toml", *RUN)
    assert result.exit_code == 0
    assert written(finished) != before, "the normal path fetched the video again or recorded the new mtime"


@pytest.mark.parametrize("state", ["failed", "running", "rendered"])
def test_a_job_not_done_is_not_a_no_op(finished, state):
    conn = sqlite3.connect(finished / ".vidbatch" / "state.db")
    with conn:
        conn.execute("update renders set state = ? where name = 'a'", [state])
    conn.close()
    assert f"job a: its render is {state}" in declined(["run", "shots.toml"])
    assert f"job a: its render is {state}" in declined(["plan", "--check", "shots.toml"])


def test_an_edited_manifest_misses_the_cache(finished):
    shots = finished / "shots.toml"
    shots.write_text(shots.read_text().replace("A red fox", "A red fox at dusk"))
    assert "the job cache entry does not hold" in declined(["plan", "--check", "shots.toml"])
    assert cli("plan", "--check", "shots.toml").exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ["run", "shots.toml", "--json"],
        ["run", "shots.toml", "--sim"],
        ["run", "shots.toml", "--state", ".vidbatch"],
        ["run", "shots.toml", "--force", "a"],
        ["run", "shots.toml", "--report", "r.html"],
        ["run", "shots.toml", "--max-cost", "1"],
        ["run", "shots.toml", "--api-host", "http://127.0.0.1:1"],
        ["run", "shots.toml", "--unknown"],
        ["run", "shots.toml", "-j", "0"],
        ["run", "shots.toml", "-j"],
        ["run", "shots.toml", "--rpm", "0.01"],
        ["run", "shots.toml", "--yes=1"],
        ["run", "shots.toml", "--var", "no-equals"],
        ["run", "shots.toml", "--", "more.toml"],
        ["run"],
        ["plan", "shots.toml"],
        ["plan", "--check", "--json", "shots.toml"],
        ["--version"],
        ["status", "shots.toml"],
    ],
)
def test_forms_it_does_not_read_go_to_click(finished, args):
    assert fast.parse(args) is None
    assert child(args, finished)[3] is True, "click ran"


@pytest.mark.parametrize(
    "setup, reason",
    [
        (lambda f, mp: mp.setenv("VIDBATCH_STATE", str(f / ".vidbatch")), "VIDBATCH_STATE"),
        (lambda f, mp: mp.delenv("MINIMAX_API_KEY"), "no plain API key"),
        (lambda f, mp: mp.setenv("MINIMAX_API_KEY", "key\u00e9"), "no plain API key"),
        (lambda f, mp: mp.setenv("MINIMAX_API_HOST", "http://[::1"), "not a plain URL"),
        (lambda f, mp: mp.setenv("VIDBATCH_CONFIG", str(f / "c.toml")), "the config file: VIDBATCH_CONFIG names"),
        (lambda f, mp: write(Path(os.environ["XDG_CONFIG_HOME"]) / "vidbatch", "config.toml", 'api_key = "k"\n').chmod(0o644), "others can read it"),
        (lambda f, mp: _config('api_host = "http://127.0.0.1:1"\n').chmod(0o620), "can be written by others"),
        (lambda f, mp: _config('[[prices.global]]\nmodel = "T2V-01"\nduration = 6\nprice = "0.20"\n'), "the config file has prices"),
        (lambda f, mp: (mp.delenv("MINIMAX_API_HOST"), _config('api_host = "http://[::1"\n')), "not a plain URL"),
        (lambda f, mp: (mp.delenv("MINIMAX_API_KEY"), _config('api_host = "http://127.0.0.1:1"\n')), "no plain API key"),
        (lambda f, mp: (f / ".vidbatch" / "state.db").unlink(), "no state database"),
        (lambda f, mp: (f / ".vidbatch" / "run.lock").unlink(), "no run lock"),
        (lambda f, mp: (f / "renders" / ".vidbatch-index.json").unlink(), "the outputs index beside it lacks its entry"),
        (lambda f, mp: write(f / "renders", ".a.mp4.x1y2.vidbatch-new", "half"), "staging files"),
        (lambda f, mp: write(f / ".vidbatch", "task-ids.journal", '{"key":"k","attempt":1,"task_id":"1"}\n'), "journal has lines"),
        (lambda f, mp: _sql(f, "delete from _sqlite_migrations where name = 'm002_error_parts'"), "needs a migration"),
        (lambda f, mp: _sql(f, "update renders set state = 'submitting' where name = 'a'"), "unsettled"),
        (lambda f, mp: _sql(f, "update renders set name = 'c' where name = 'b'"), "names its render after another job"),
        (lambda f, mp: _sql(f, "update outputs set key = 'vb1:other' where name = 'a'"), "job a: its output is not recorded"),
    ],
)
def test_each_doubt_declines(finished, monkeypatch, setup, reason):
    setup(finished, monkeypatch)
    assert reason in declined(["run", "shots.toml"])


def test_an_unsettled_create_of_another_manifest_declines_a_run_not_a_check(finished):
    _sql(finished, "update renders set state = 'submitting' where name = 'e'")
    assert "unsettled" in declined(["run", "shots.toml"])
    noop.check(["shots.toml"], {}, run=False)  # plan --check reads only its own jobs
    result = cli("run", "shots.toml", *RUN)
    assert "e" in _states(finished).get("uncertain", []), "the normal run marked it uncertain: a write"
    assert result.exit_code == 0


def test_a_held_run_lock_declines_and_the_normal_path_says_so(finished):
    fd = os.open(finished / ".vidbatch" / "run.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert "another run holds the state folder" in declined(["run", "shots.toml"])
        assert cli("run", "shots.toml", *RUN).exit_code == 4
    finally:
        os.close(fd)


def test_a_manifest_with_warnings_is_left_to_the_normal_path(finished):
    write(finished, "warn.toml", t2v_manifest({"w": "A fox [Push out]"}))
    assert cli("run", "warn.toml", *RUN).exit_code == 0
    assert "warnings, sequences, chained shots or prices" in declined(["run", "warn.toml"])
    result = cli("run", "warn.toml", *RUN)
    assert "did you mean [Pull out]" in result.output


def test_a_picks_file_to_warn_about_is_left_to_the_normal_path(finished):
    """A picks file changes no job of these manifests, but run warns about a bad one as plan does."""
    picks_file = finished / "shots.picks.toml"
    picks_file.write_text('["a"]\npick = 1\n')
    assert "an input changed" in declined(["run", "shots.toml"])  # the entry names the file as it was
    assert cli("run", "shots.toml", *RUN).exit_code == 0  # writes the entry again
    same_both_ways(["run", "shots.toml", *RUN], finished)  # a good picks file: still a no-op

    picks_file.write_text('["a"]\npick = = 1\n')
    for _ in range(2):  # the second after an entry made with the bad file
        result = cli("run", "shots.toml", *RUN)
        assert result.exit_code == 0
        assert f"warning      {picks_file}:2: picks file is not valid TOML" in result.output, result.output
    picks_file.write_text('["a"]\npick = 1\n')  # fixed: a no-op again after one run
    assert cli("run", "shots.toml", *RUN).exit_code == 0
    same_both_ways(["run", "shots.toml", *RUN], finished)


def test_a_folder_is_left_to_the_normal_path(finished):
    assert "is not a manifest file" in declined(["plan", "--check", "."])


def test_a_terminal_gets_the_live_display(finished, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert fast.answer(["run", "shots.toml"]) is None, "returned: click runs"


def test_a_stderr_that_is_not_utf8_goes_to_click(finished):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-c", CHILD, "run", "shots.toml"], cwd=finished, env=env, capture_output=True)
    assert proc.returncode == 0 and proc.stderr.endswith(b"CLICK True\n"), proc.stderr


@pytest.mark.parametrize("given", ["shots.toml", "./shots.toml", "sub/../shots.toml", ".//shots.toml", "SHOTS", "/abs/x.toml", "/a/./b//c.toml"])
def test_paths_are_spelled_as_pathlib_spells_them(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os.path, "isfile", lambda p: True)
    assert noop._absolute(given) == str(Path(given).expanduser().absolute())


def test_the_names_it_reads_are_the_librarys():
    from vidbatch import files, outputs_index, state

    assert (noop.DB_NAME, noop.LOCK_NAME, noop.JOURNAL_NAME, noop.STATE_DIR_NAME) == (state.DB_NAME, state.LOCK_NAME, state.JOURNAL_NAME, state.STATE_DIR_NAME)
    assert noop.INDEX_NAME == outputs_index.INDEX_NAME and noop.STAGING_MARK == files.STAGING_SUFFIX
    from vidbatch.errors import EXIT_INTERRUPTED

    assert fast.EXIT_INTERRUPTED == EXIT_INTERRUPTED


def _config(text: str) -> Path:
    """A config file (mode 0600) where vidbatch.config looks for it."""
    path = write(Path(os.environ["XDG_CONFIG_HOME"]) / "vidbatch", "config.toml", text)
    path.chmod(0o600)
    return path


def _sql(folder: Path, statement: str) -> None:
    conn = sqlite3.connect(folder / ".vidbatch" / "state.db")
    with conn:
        conn.execute(statement)
    conn.close()


def _states(folder: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(folder / ".vidbatch" / "state.db")
    out: dict[str, list[str]] = {}
    for name, state in conn.execute("select name, state from renders"):
        out.setdefault(state, []).append(name)
    conn.close()
    return out
