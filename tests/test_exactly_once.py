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

from dataclasses import dataclass

import pytest

from vidbatch.policy import (
    CLOCK_MARGIN,
    CLOCK_MARGIN_NO_DATE,
    LostCreate,
    Shape,
    Window,
    judge_lost_create,
    lost_create_window,
    v2_shape,
)


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
WINDOW = Window(after=1000.0)


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
    window = Window(after=1000.0, before=2000.0)
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


def test_the_window_opens_at_the_previous_recorded_task_on_the_servers_clock():
    # the local clock is an hour behind the server: the previous task's created_at decides
    w = lost_create_window(intent_at=5000.0, local_now=5010.0, server_now=None, previous_created_at=8600.0, next_created_at=None)
    assert w.after == 8600.0 and w.before is None


def test_the_date_header_moves_the_intent_to_the_servers_clock():
    w = lost_create_window(intent_at=5000.0, local_now=5010.0, server_now=8610.0, previous_created_at=None, next_created_at=None)
    assert w.after == 5000.0 + 3600.0 - CLOCK_MARGIN


def test_without_a_date_header_the_margin_is_wide():
    w = lost_create_window(intent_at=5000.0, local_now=5010.0, server_now=None, previous_created_at=None, next_created_at=9000.0)
    assert w.after == 5000.0 - CLOCK_MARGIN_NO_DATE and w.before == 9000.0


def test_the_shape_fills_in_the_contracts_defaults():
    text = {"model": "MiniMax-H3", "content": [{"type": "text", "text": "x"}], "ratio": "16:9"}
    assert v2_shape(text) == Shape("MiniMax-H3", 5, "2K", "16:9")
    frame = {"model": "MiniMax-H3", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "u"}, "role": "first_frame"}], "duration": 8}
    assert v2_shape(frame) == Shape("MiniMax-H3", 8, "2K", "adaptive")
