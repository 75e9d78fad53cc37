"""Issue 11 item 8: a run of more than the default number of renders never starts without
``--max-renders`` or a yes at a terminal; refused, it exits 2 with zero API calls and says how to
go on. Through the real CLI against the simulator over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vidbatch.session import RUN_SIZE_LIMIT

from .helpers import api_calls, cli, t2v_manifest

FAST = ["--poll-interval", "0", "--rpm", "600000", "-j", "50"]


def _big(tmp_path: Path) -> Path:
    manifest = tmp_path / "big.toml"
    manifest.write_text(t2v_manifest({f"s{i}": f"Shot number {i}" for i in range(RUN_SIZE_LIMIT + 1)}))
    return manifest


@pytest.mark.parametrize("extra", [[], ["--yes"], ["--json"]])
def test_a_large_run_without_a_terminal_is_refused_with_no_api_call(tmp_path: Path, sim_env, extra: list[str]) -> None:
    result = cli(["run", _big(tmp_path), *FAST, *extra])
    assert result.exit_code == 2, result.output
    assert api_calls(sim_env) == 0
    assert f"--max-renders {RUN_SIZE_LIMIT + 1}" in result.output and "nothing was sent" in result.output
    assert not (tmp_path / "renders").exists()


def test_a_large_run_with_max_renders_starts(tmp_path: Path, sim_env) -> None:
    result = cli(["run", _big(tmp_path), *FAST, "--max-renders", str(RUN_SIZE_LIMIT + 1)])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "renders").glob("*.mp4"))) == RUN_SIZE_LIMIT + 1


def test_a_large_run_on_a_terminal_asks_even_with_yes(tmp_path: Path, sim_env, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbatch.cli import run_cmds

    asked: list[str] = []

    def confirm(text: str, **kw: Any) -> bool:
        asked.append(text)
        return False

    monkeypatch.setattr(run_cmds, "stdin_is_terminal", lambda: True)
    monkeypatch.setattr(run_cmds.click, "confirm", confirm)
    result = cli(["run", _big(tmp_path), *FAST, "--yes"])
    assert asked == [f"Create {RUN_SIZE_LIMIT + 1} paid renders for 28.28 USD?"]
    # the only call is the balance, read before the question so the person sees it; no create
    assert result.exit_code == 2 and api_calls(sim_env) - sim_env.sim.calls["query_balance"] == 0


def test_run_help_documents_the_limit() -> None:
    text = " ".join(cli(["run", "--help"]).output.split())
    assert f"more than {RUN_SIZE_LIMIT} renders" in text and "--max-renders" in text
