"""MiniMax's own CLI (npm ``mmx-cli``), a client no one here wrote, renders against ``vidbatch sim --https``.

mmx rewrites every ``http://`` download URL to ``https://`` (as the real service serves them), so
it needs the simulator's HTTPS: it trusts the simulator's CA through ``NODE_EXTRA_CA_CERTS``.
It reads its host and key from its config file (``$MMX_CONFIG_DIR/config.json``: ``base_url``,
``api_key``, and ``region``, without which it probes MiniMax's real hosts to guess one), so the
key never appears on a command line.

The pinned package is installed once per session with npm, into ``$VIDBATCH_MMX_DIR`` when set
(``.ci/run`` sets it, so CI reuses it) or a session temporary folder. npm or the registry being
unreachable fails the tests: CI has both, and a skipped test would hide that the client broke.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vidbatch import mp4
from vidbatch.sim import SimConfig, running_simulator

from .conftest import TEST_KEY
from .test_sim import png

#: The mmx-cli release these tests run (1.0.27: Video Generation V2 / MiniMax-H3).
MMX_VERSION = "1.0.27"
#: Proxy settings mmx would route even loopback calls through (undici's global ProxyAgent).
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")

pytestmark = pytest.mark.timeout(600)  # the first test pays for the npm install


@pytest.fixture(scope="session")
def mmx(tmp_path_factory) -> list[str]:
    """The command that runs the pinned mmx: ``[node, .../mmx.mjs]``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed to test against MiniMax's CLI (mmx-cli); install Node.js 18 or later")
    configured = os.environ.get("VIDBATCH_MMX_DIR")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("mmx-cli")
    package = folder / "node_modules" / "mmx-cli"
    if not _installed(package):
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--save-exact", f"mmx-cli@{MMX_VERSION}"],
            capture_output=True,
            text=True,
            timeout=540,
        )
        if done.returncode != 0 or not _installed(package):
            pytest.fail(f"npm could not install mmx-cli@{MMX_VERSION} (is the npm registry reachable?):\n{done.stderr[-3000:]}")
    entry = package / json.loads((package / "package.json").read_text())["bin"]["mmx"]
    return [node, str(entry)]


def _installed(package: Path) -> bool:
    try:
        return json.loads((package / "package.json").read_text()).get("version") == MMX_VERSION
    except (OSError, ValueError):
        return False


@pytest.fixture
def https_sim(tmp_path):
    """``vidbatch sim --https`` in process, with renders that take a second (mmx polls through
    the statuses) and the data kept in a folder, the CA with it."""
    with running_simulator(SimConfig(key=TEST_KEY, latency=1.0, data_dir=tmp_path / "sim"), https=True) as server:
        yield server


def run_mmx(mmx: list[str], server: Any, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``mmx ARGS`` pointed at ``server`` through its config file, trusting the sim's CA."""
    config_dir = tmp_path / "mmx-config"
    config_dir.mkdir(exist_ok=True)
    config = {"api_key": TEST_KEY, "base_url": server.base_url, "region": "global", "output": "json"}
    (config_dir / "config.json").write_text(json.dumps(config))
    env = {name: value for name, value in os.environ.items() if name not in PROXY_VARS}
    env.update(MMX_CONFIG_DIR=str(config_dir), NODE_EXTRA_CA_CERTS=str(server.ca_file), CI="1")
    return subprocess.run(
        [*mmx, *args, "--non-interactive"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )


def check_render(path: Path, server: Any) -> dict[str, Any]:
    """``path`` is a whole MP4 the simulator made; its metadata (which names the task)."""
    assert path.is_file()
    assert mp4.check_mp4(path) == []
    meta = mp4.read_sim_metadata(path)
    assert meta is not None
    return meta


def test_mmx_renders_a_v1_job_end_to_end(mmx, https_sim, tmp_path):
    done = run_mmx(mmx, https_sim, tmp_path, "video", "generate", "--prompt", "a fox runs through snow",
                   "--download", "fox.mp4", "--poll-interval", "0.2", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fox.mp4"
    meta = check_render(tmp_path / "fox.mp4", https_sim)
    [task] = https_sim.sim.tasks.all_tasks()
    assert meta["task_id"] == task.task_id and meta["prompt"] == "a fox runs through snow"
    assert task.request == {"model": "MiniMax-Hailuo-2.3", "prompt": "a fox runs through snow"}
    calls = https_sim.sim.stats()["calls"]
    assert (calls["create"], calls["retrieve"], calls["download"]) == (1, 1, 1)
    assert calls["query"] >= 1
    assert TEST_KEY not in done.stdout + done.stderr


def test_mmx_renders_h3_jobs_end_to_end(mmx, https_sim, tmp_path):
    (tmp_path / "start.png").write_bytes(png())
    text = run_mmx(mmx, https_sim, tmp_path, "video", "generate", "--model", "MiniMax-H3",
                   "--prompt", "waves at sunset", "--duration", "6", "--download", "waves.mp4",
                   "--poll-interval", "0.2", "--quiet")  # fmt: skip
    assert text.returncode == 0, text.stderr
    framed = run_mmx(mmx, https_sim, tmp_path, "video", "generate", "--model", "MiniMax-H3",
                     "--prompt", "the subject walks forward", "--image", "start.png", "--download", "walk.mp4",
                     "--poll-interval", "0.2", "--quiet")  # fmt: skip
    assert framed.returncode == 0, framed.stderr

    tasks = {t.prompt: t for t in https_sim.sim.tasks.v2_tasks()}
    waves, walk = tasks["waves at sunset"], tasks["the subject walks forward"]
    assert check_render(tmp_path / "waves.mp4", https_sim)["task_id"] == waves.task_id
    assert check_render(tmp_path / "walk.mp4", https_sim)["task_id"] == walk.task_id
    # the requests on the wire, as the contract writes them
    assert waves.request == {
        "model": "MiniMax-H3",
        "content": [{"type": "text", "text": "waves at sunset"}],
        "resolution": "2K",
        "duration": 6,
        "ratio": "16:9",
    }
    [_, frame] = walk.request["content"]
    assert frame["role"] == "first_frame" and frame["image_url"]["url"].startswith("data:image/png;base64,")
    assert walk.request["ratio"] == "adaptive"
    calls = https_sim.sim.stats()["calls"]
    assert (calls["v2_create"], calls["v2_download"], calls["create"]) == (2, 2, 0)

    # mmx reads the task back as the simulator serves it
    shown = run_mmx(mmx, https_sim, tmp_path, "video", "task", "get", "--model", "MiniMax-H3",
                    "--task-id", waves.task_id)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    task = json.loads(shown.stdout)
    assert (task["task_id"], task["status"], task["duration"], task["ratio"]) == (waves.task_id, "succeeded", 6, "16:9")
    assert task["url"].startswith(https_sim.base_url + "/_sim/video/")


def test_mmx_reports_a_failed_h3_task_and_a_refused_request(mmx, https_sim, tmp_path):
    failed = run_mmx(mmx, https_sim, tmp_path, "video", "generate", "--model", "MiniMax-H3",
                     "--prompt", "sim-fail on purpose", "--poll-interval", "0.2", "--quiet")  # fmt: skip
    assert failed.returncode != 0
    assert "Task failed" in failed.stderr + failed.stdout and "sim-fail" in failed.stderr + failed.stdout
    https_sim.sim.inject("v2_create", "code:2013")
    refused = run_mmx(mmx, https_sim, tmp_path, "video", "generate", "--model", "MiniMax-H3",
                      "--prompt", "refused", "--quiet")  # fmt: skip
    assert refused.returncode != 0 and "invalid parameters" in refused.stderr + refused.stdout
    assert len(https_sim.sim.tasks.v2_tasks()) == 1
