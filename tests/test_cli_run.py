"""``run``, ``status`` and ``watch`` through the real CLI: what a person sees (issue 10)."""

from __future__ import annotations

import json
import os
import pty
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from vidbatch.sim import SimConfig, running_simulator

from .conftest import TEST_KEY
from .helpers import cli, t2v_manifest

FAST = ["--poll-interval", "0", "--rpm", "60000", "--sim-latency", "0"]


def test_one_render_is_singular(tmp_path):
    (tmp_path / "one.toml").write_text(t2v_manifest({"fox": "A fox"}))
    result = cli(["run", "--sim", tmp_path / "one.toml", *FAST])
    assert result.exit_code == 0, result.output
    assert "1 render created in this run (simulated)" in result.output
    assert "1 renders" not in result.output and "1 job done" in result.output


def test_status_of_a_folder_is_the_status_of_its_manifests(tmp_path, monkeypatch):
    (tmp_path / "a.toml").write_text(t2v_manifest({"fox": "A fox"}))
    (tmp_path / "b.toml").write_text(t2v_manifest({"owl": "An owl"}).replace('"renders"', '"renders-b"'))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert cli(["run", "--sim", tmp_path / "a.toml", tmp_path / "b.toml", *FAST]).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = cli(["status", "--sim", "."])
    assert result.exit_code == 0, result.output
    assert "2 done" in result.output and "fox" in result.output and "owl" in result.output
    doc = json.loads(cli(["status", "--sim", "--json", "."]).output)
    assert sorted(j["name"] for j in doc["jobs"]) == ["fox", "owl"]
    assert doc["state_dir"] == str(tmp_path / ".vidbatch" / "sim")


def test_a_folder_without_manifests_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli(["status", tmp_path / "empty"])
    assert result.exit_code == 2 and "no manifests in" in result.output


def test_after_failures_the_status_hint_has_the_options_of_the_run(tmp_path):
    (tmp_path / "shots.toml").write_text(t2v_manifest({"fox": "A fox", "bad": "A sim-fail shot"}))
    state = tmp_path / "elsewhere"
    result = cli(["run", "--sim", "--state", state, tmp_path / "shots.toml", *FAST])
    assert result.exit_code == 1, result.output
    hint = next(line for line in result.output.splitlines() if "see errors with" in line)
    command = hint.split("`")[1]
    assert "--sim" in command and f"--state={state}" in command, hint
    args = command.split()[1:]  # what the user would paste
    shown = cli(args)
    assert shown.exit_code == 0 and "failed" in shown.output and "sim-fail" in shown.output


@pytest.mark.parametrize("command", [["run", "--json", "missing.toml"], ["status", "--json", "--job"], ["plan", "--json", "--bogus", "x.toml"]])
def test_usage_errors_under_json_are_one_json_object(tmp_path, command, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(command)
    assert result.exit_code == 2
    doc = json.loads(result.stdout)  # the whole of stdout is one object
    assert doc["exit_code"] == 2 and doc["error"]


def test_vidbatch_errors_under_json_are_one_json_object(tmp_path):
    (tmp_path / "bad.toml").write_text(t2v_manifest({"fox": "A fox"}).replace("MiniMax-Hailuo-02", "Hailuo-99"))
    result = cli(["run", "--json", "--sim", tmp_path / "bad.toml"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert "Hailuo-99" in doc["error"] and doc["problems"][0]["field"] == "model"
    watched = cli(["watch", "--json", "--sim", tmp_path, "--force", "nobody"])  # events, then the error
    last = json.loads(watched.stdout.splitlines()[-1])
    assert watched.exit_code == 2 and "--force names no job" in last["error"] and last["exit_code"] == 2
    plain = cli(["run", "--sim", tmp_path / "bad.toml"])
    assert plain.exit_code == 2 and plain.stdout == "", "without --json, errors stay on stderr"


def test_the_display_starts_after_the_confirm_question(tmp_path, monkeypatch):
    """Its clock must not count the time spent answering."""
    from vidbatch.cli import progress, run_cmds

    order: list[str] = []
    real = progress.make_reporter

    def make_reporter(as_json: bool) -> Any:
        order.append("display")
        return real(as_json)

    def confirm(text: str, **kw: Any) -> bool:
        order.append("question")
        return True

    monkeypatch.setattr(progress, "make_reporter", make_reporter)
    monkeypatch.setattr(run_cmds, "stdin_is_terminal", lambda: True, raising=False)
    monkeypatch.setattr(run_cmds.click, "confirm", confirm)
    (tmp_path / "big.toml").write_text(t2v_manifest({f"s{i}": f"Shot {i}" for i in range(12)}))
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
        result = cli(["run", tmp_path / "big.toml", "--poll-interval", "0", "--rpm", "60000"], env=env)
    assert result.exit_code == 0, result.output
    assert order == ["question", "display"]


def _read_until(fd: int, needle: bytes) -> bytes:
    """Read the terminal until ``needle`` shows or the child closes it. No deadline: a blocking
    read waits as long as the machine needs (pytest-timeout guards against a hang)."""
    out = b""
    while needle not in out:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_the_confirm_question_shows_its_answers_on_a_terminal(tmp_path):
    manifest = tmp_path / "big.toml"
    manifest.write_text(t2v_manifest({f"s{i}": f"Shot {i}" for i in range(12)}))
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        env = {**os.environ, "MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY, "PYTHONPATH": str(Path(__file__).parent.parent)}
        pid, fd = pty.fork()
        if pid == 0:  # the child: vidbatch on a terminal
            os.execve(sys.executable, [sys.executable, "-m", "vidbatch", "run", str(manifest), "--poll-interval", "0", "--rpm", "60000"], env)
        try:
            asked = _read_until(fd, b"[y/N]")
            os.write(fd, b"n\n")
            rest = _read_until(fd, b"nothing was sent")
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # never leave the child waiting for an answer
            raise
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        assert b"Create 12 paid renders for 3.36 USD? [y/N]" in asked, asked[-300:]
        assert b"cancelled; nothing was sent" in rest
        assert os.waitstatus_to_exitcode(status) == 2
        assert server.sim.calls["create"] == 0
