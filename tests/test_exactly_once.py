"""Exactly-once creates on Video Generation V2 (MiniMax-H3).

When a V2 create's answer is lost (or the process died with the create on the wire), vidbatch
asks the task list which tasks were created in that create's window and are not recorded, and
judges (vidbatch.policy): none of its shape -> it never happened, create again; exactly one new
task, of its shape -> adopt it; anything else -> uncertain, with the candidate task ids.

Three layers: the pure judgement and window (no I/O), the runner against a scripted account
(tests/fakes.py: deterministic, no threads, no sleeping), and real ``vidbatch run`` processes
against the simulator with lost create answers injected and SIGKILLs at seeded points.
"""

from __future__ import annotations

import json
import random
import signal
from dataclasses import dataclass
from typing import Any

import pytest

from vidbatch import mp4
from vidbatch.sim import SimConfig, running_simulator

from vidbatch.policy import (
    CLOCK_MARGIN,
    CLOCK_MARGIN_NO_DATE,
    CLOCK_TIGHT,
    LostCreate,
    Shape,
    Window,
    judge_lost_create,
    lost_create_window,
    v2_shape,
)

from .conftest import TEST_KEY
from .helpers import cli, cli_subprocess


@dataclass(frozen=True)
class T:
    """A task as the list shows it."""

    task_id: str
    created_at: float | None
    model: str | None = "MiniMax-H3"
    duration: int | None = 5
    resolution: str | None = "2K"
    ratio: str | None = "16:9"
    task_type: str | None = None


OURS = Shape("MiniMax-H3", 5, "2K", "16:9")
WINDOW = Window(after=1000.0, sure_after=1000.0)


# --- the judgement --------------------------------------------------------------------------------


def test_no_new_task_means_the_create_never_happened():
    tasks = [T("old", 900.0), T("mine-before", 1001.0)]
    got = judge_lost_create(tasks, recorded={"mine-before"}, shape=OURS, window=WINDOW)
    assert got.outcome is LostCreate.NONE and got.candidates == ()


def test_one_new_task_of_our_shape_is_adopted():
    got = judge_lost_create([T("new", 1002.0), T("mine", 1001.0)], recorded={"mine"}, shape=OURS, window=WINDOW)
    assert got.outcome is LostCreate.ADOPT and got.task.task_id == "new"


def test_a_new_task_of_another_shape_is_not_ours_so_ours_never_happened():
    got = judge_lost_create([T("theirs", 1002.0, ratio="9:16")], recorded=set(), shape=OURS, window=WINDOW)
    assert got.outcome is LostCreate.NONE and got.candidates == ("theirs",)


@pytest.mark.parametrize(
    "tasks",
    [
        [T("a", 1002.0), T("b", 1003.0)],  # two of our shape
        [T("a", 1002.0), T("b", 1003.0, duration=10)],  # ours and someone else's
    ],
)
def test_more_than_one_new_task_cannot_be_told_apart(tasks):
    got = judge_lost_create(tasks, recorded=set(), shape=OURS, window=WINDOW)
    assert got.outcome is LostCreate.AMBIGUOUS
    assert set(got.candidates) == {"a", "b"}
    assert "a" in got.describe() and "b" in got.describe()


def test_tasks_outside_the_window_do_not_count_and_a_task_without_a_time_does():
    window = Window(after=1000.0, before=2000.0, sure_after=1000.0)
    tasks = [T("before", 999.0), T("after", 2001.0), T("ours", 1500.0)]
    assert judge_lost_create(tasks, recorded=set(), shape=OURS, window=window).outcome is LostCreate.ADOPT
    undated = [*tasks, T("undated", None, ratio="1:1")]
    assert judge_lost_create(undated, recorded=set(), shape=OURS, window=window).outcome is LostCreate.AMBIGUOUS


def test_unknown_fields_match_anything_and_known_ones_must_agree():
    assert OURS.matches(T("x", 1.0, duration=None, ratio=None))
    assert not OURS.matches(T("x", 1.0, resolution="768P"))
    assert Shape(None, None, None, None).matches(T("x", 1.0))


def test_a_create_older_than_the_list_reaches_cannot_be_settled():
    got = judge_lost_create([], recorded=set(), shape=OURS, window=WINDOW, reachable=False)
    assert got.outcome is LostCreate.UNREACHABLE


# --- the window -----------------------------------------------------------------------------------


def test_the_window_opens_one_second_after_the_previous_recorded_task_on_the_servers_clock():
    # the local clock is an hour behind the server: the previous task's created_at decides; our
    # own creates are a created_at step apart, so a task of that same second is not ours
    w = lost_create_window(intent_at=5000.0, local_now=5010.0, server_now=8610.0, previous_created_at=8600.0, next_created_at=None)
    assert w.after == 8601.0 and w.before is None
    assert not w.holds(8600.0) and w.holds(8601.0)


def test_the_date_header_moves_the_intent_to_the_servers_clock():
    w = lost_create_window(intent_at=5000.0, local_now=5010.0, server_now=8610.0, previous_created_at=None, next_created_at=None)
    assert w.after == 5000.0 + 3600.0 - CLOCK_MARGIN
    assert w.sure_after == 5000.0 + 3600.0 - CLOCK_TIGHT


def test_without_a_date_header_the_margin_is_wide_and_nothing_is_adopted():
    w = lost_create_window(intent_at=5000.0, local_now=5010.0, server_now=None, previous_created_at=None, next_created_at=9000.0)
    assert w.after == 5000.0 - CLOCK_MARGIN_NO_DATE and w.before == 8999.0
    got = judge_lost_create([T("new", 5005.0)], recorded=set(), shape=OURS, window=w)
    assert got.outcome is LostCreate.UNSURE


def test_a_lone_task_of_our_shape_made_before_the_intent_is_not_adopted():
    """Someone else's task, seconds before a create that never arrived, looks like ours; only
    the clocks tell it apart: it is in the window (it blocks creating again) but not adopted."""
    w = lost_create_window(intent_at=5000.0, local_now=5010.0, server_now=5010.0, previous_created_at=None, next_created_at=None)
    early = judge_lost_create([T("theirs", 4980.0)], recorded=set(), shape=OURS, window=w)
    assert early.outcome is LostCreate.UNSURE and early.candidates == ("theirs",)
    assert judge_lost_create([T("ours", 4999.0)], recorded=set(), shape=OURS, window=w).outcome is LostCreate.ADOPT


def test_the_shape_fills_in_the_contracts_defaults():
    text = {"model": "MiniMax-H3", "content": [{"type": "text", "text": "x"}], "ratio": "16:9"}
    assert v2_shape(text) == Shape("MiniMax-H3", 5, "2K", "16:9")
    frame = {"model": "MiniMax-H3", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "u"}, "role": "first_frame"}], "duration": 8}
    assert v2_shape(frame) == Shape("MiniMax-H3", 8, "2K", "adaptive")


# --- real runs, lost answers injected, processes killed ----------------------------------------------

PROMPTS = {f"shot{i:02d}": f"Exactly once shot {i:02d}" for i in range(6)}
RUN = ["--json", "--poll-interval", "0", "--rpm", "60000", "--concurrency", "4"]


def h3_text_manifest(prompts: dict[str, str]) -> str:
    """Every job the same shape (model, duration, resolution, ratio): the list alone cannot tell
    them apart, only the window can."""
    jobs = "".join(f'[[jobs]]\nname = "{name}"\nprompt = "{prompt}"\n\n' for name, prompt in prompts.items())
    return f'output_dir = "renders"\n\n[defaults]\nmodel = "MiniMax-H3"\nratio = "16:9"\n\n{jobs}'


def run_and_kill(manifest, env, rng: random.Random) -> None:
    """``vidbatch run`` killed (SIGKILL) after a seeded number of its events."""
    proc = cli_subprocess(["run", manifest, *RUN], env=env)
    assert proc.stdout is not None
    events, wanted = 0, rng.randint(1, 25)
    while events < wanted:
        line = proc.stdout.readline()
        if not line:
            break
        events += line.startswith("{")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def uncertain_jobs(manifest, env) -> dict[str, str]:
    status = json.loads(cli(["status", manifest, "--json"], env=env).output)
    return {j["name"]: j.get("error") or "" for j in status["jobs"] if j["state"] in ("uncertain", "submitting")}


def killed_runs(tmp_path, seed: int, config: SimConfig) -> tuple[Any, dict[str, str], Any]:
    """Three runs killed at seeded points, then one left to finish; returns (sim, uncertain
    jobs with their messages, the final run)."""
    rng = random.Random(seed)
    manifest = tmp_path / "once.toml"
    manifest.write_text(h3_text_manifest(PROMPTS))
    with running_simulator(config) as server:
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
        for _ in range(3):
            server.sim.inject("v2_create", "slow", times=2, seconds=0.05)  # kills land mid-create too
            run_and_kill(manifest, env, rng)
        final = cli(["run", manifest, *RUN], env=env)
        return server.sim, uncertain_jobs(manifest, env), final


def check_outputs(tmp_path, sim, uncertain: dict[str, str]) -> None:
    for name, prompt in PROMPTS.items():
        made = sim.creates_for(prompt)
        if name in uncertain:
            assert made <= 1, f"{name}: uncertain, and created {made} times"
            continue
        assert made == 1, f"{name}: created {made} times"
        out = tmp_path / "renders" / f"{name}.mp4"
        assert mp4.check_mp4(out) == [], name
        assert mp4.read_sim_metadata(out)["prompt"] == prompt, name


@pytest.mark.parametrize("seed", [1])
def test_lost_answers_and_kills_with_only_vidbatch_on_the_account_create_each_job_once(tmp_path, seed):
    sim, uncertain, final = killed_runs(tmp_path, seed, SimConfig(key=TEST_KEY, lost_create_rate=0.1, seed=seed))
    assert uncertain == {}, uncertain
    assert final.exit_code == 0, final.output
    check_outputs(tmp_path, sim, uncertain)
    assert sim.stats()["v2_tasks"] == len(PROMPTS)  # no task beyond one per job: nothing paid twice


@pytest.mark.parametrize("seed", [3])
def test_with_a_second_client_on_the_account_ambiguous_jobs_stay_uncertain_and_nothing_is_paid_twice(tmp_path, seed):
    config = SimConfig(key=TEST_KEY, lost_create_rate=0.25, second_client_rate=0.5, seed=seed)
    sim, uncertain, final = killed_runs(tmp_path, seed, config)
    check_outputs(tmp_path, sim, uncertain)
    ours = {t.task_id for t in sim.tasks.v2_tasks() if t.prompt.startswith("Exactly once")}
    theirs = {t.task_id for t in sim.tasks.v2_tasks()} - ours
    assert theirs, "the second client made tasks"
    for name, message in uncertain.items():
        # the job says which tasks it could not tell apart: someone else's among them
        assert any(task_id in message for task_id in theirs), (name, message)
    assert final.exit_code == (1 if uncertain else 0), final.output


def test_a_lost_answer_beside_a_second_clients_task_stays_uncertain_and_is_not_created_again(tmp_path):
    manifest = tmp_path / "one.toml"
    manifest.write_text(h3_text_manifest({"solo": "Exactly once, beside someone else"}))
    with running_simulator(SimConfig(key=TEST_KEY, second_client_rate=1.0, seed=7)) as server:
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": TEST_KEY}
        server.sim.inject("v2_create", "drop_after_create")
        first = cli(["run", manifest, *RUN], env=env)
        assert first.exit_code == 1, first.output
        theirs = [t.task_id for t in server.sim.tasks.v2_tasks() if not t.prompt.startswith("Exactly once")]
        assert len(theirs) == 1
        message = uncertain_jobs(manifest, env)["solo"]
        assert theirs[0] in message, message
        again = cli(["run", manifest, *RUN], env=env)
        assert again.exit_code == 1 and server.sim.creates_for("Exactly once, beside someone else") == 1
