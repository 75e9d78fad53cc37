"""Issue 10: plans say what runs do, and no command destroys or rewrites a paid render.
Through the real CLI, against the simulator over HTTP, with a real SQLite state."""

from __future__ import annotations

import json
from pathlib import Path

from vidbatch import mp4

from .helpers import cli, creates

FAST = ["--poll-interval", "0", "--rpm", "60000"]

TAKES = """
output_dir = "renders"
[defaults]
model = "MiniMax-Hailuo-02"

[[jobs]]
name = "hero-take{{ take }}"
prompt = "A hero walks into the light"
matrix = { take = [1, 2, 3] }
"""


def test_identical_requests_plan_one_submit_and_reuse_after(tmp_path: Path, sim_env) -> None:
    manifest = tmp_path / "takes.toml"
    manifest.write_text(TAKES)
    plan = json.loads(cli(["plan", "--json", manifest]).output)
    actions = {j["name"]: (j["action"], j["after"]) for j in plan["jobs"]}
    assert actions == {
        "hero-take1": ("submit", None),
        "hero-take2": ("reuse", "hero-take1"),
        "hero-take3": ("reuse", "hero-take1"),
    }
    assert plan["summary"]["billable"] == 1
    text = cli(["plan", manifest]).output
    assert "1 billable render" in text and "identical request to hero-take1" in text

    result = cli(["run", manifest, *FAST])
    assert result.exit_code == 0, result.output
    assert creates(sim_env) == 1, "the plan promised one create"
    videos = {p.name: p.read_bytes() for p in (tmp_path / "renders").glob("*.mp4")}
    assert sorted(videos) == ["hero-take1.mp4", "hero-take2.mp4", "hero-take3.mp4"]
    assert len(set(videos.values())) == 1
    assert all(mp4.check_mp4(tmp_path / "renders" / n) == [] for n in videos)
