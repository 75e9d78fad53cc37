"""Messages that name a command carry the options that change what it sees (--var, --state,
--sim), so that copying the command does the right thing; gc and report take them all."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from .helpers import cli

FAST = ["--poll-interval", "0", "--rpm", "60000"]
MANIFEST = """
output_dir = "renders"
[vars]
mood = "calm"
[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "{{ mood }}-sea"
prompt = "A {{ mood }} sea at dawn"

[[jobs]]
name = "{{ mood }}-sky"
prompt = "A {{ mood }} sky at dusk"
"""


def _hinted(output: str, command: str) -> list[str]:
    line = next(line for line in output.splitlines() if f"vidbatch {command} " in line)
    start = line.index(f"vidbatch {command} ")
    text = line[start:].rstrip(")`")
    words = shlex.split(text)
    return words[1:]


def test_plan_orphan_hint_and_gc_hint_carry_sim_state_and_vars(tmp_path: Path, sim_env, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    manifest = tmp_path / "sea.toml"
    manifest.write_text(MANIFEST)
    state = tmp_path / "elsewhere"
    same = ["--var", "mood=stormy", "--state", str(state), "--sim"]
    assert cli(["run", manifest, *same, *FAST]).exit_code == 0
    manifest.write_text(MANIFEST.split("[[jobs]]\nname = \"{{ mood }}-sky\"")[0])  # the sky job leaves
    plan = cli(["plan", manifest, *same])
    assert "1 orphan (vidbatch gc" in plan.output
    gc_args = _hinted(plan.output, "gc")
    assert {"--var=mood=stormy", f"--state={state}", "--sim"} <= set(gc_args)
    dry = cli([*gc_args, "-n"])
    assert "would drop stormy-sky (done)" in dry.output, dry.output
    again = _hinted(dry.output, "gc")
    assert again == gc_args
    out = cli(gc_args)
    assert out.exit_code == 0 and "1 orphan dropped" in out.output
    assert json.loads(cli(["plan", "--json", manifest, *same]).output)["orphans"] == []


def test_report_takes_var_state_and_sim(tmp_path: Path, sim_env, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    manifest = tmp_path / "sea.toml"
    manifest.write_text(MANIFEST)
    same = ["--var", "mood=stormy", "--state", str(tmp_path / "elsewhere"), "--sim"]
    assert cli(["run", manifest, *same, *FAST]).exit_code == 0
    out = cli(["report", manifest, *same])
    assert out.exit_code == 0, out.output
    page = (tmp_path / "renders-sim" / "report.html").read_text()
    assert "stormy-sea" in page and "stormy-sky" in page and "calm-sea" not in page
    assert out.output.startswith(f"wrote {Path('renders-sim') / 'report.html'} (")
