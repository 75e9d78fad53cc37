"""Ctrl-C as a message, not an exception, for loops that can stop cleanly at known points.

Python's own SIGINT handler raises KeyboardInterrupt at whatever bytecode the main thread runs
next. One raised inside a weakref callback or a ``__del__`` (the callback that drops a freed
asyncio task from asyncio's set of tasks, say) is printed and dropped: a first Ctrl-C of a run
was lost that way (issue 15). One raised in the middle of bookkeeping leaves it half done. The
runner (at its waits) and the watcher (at its queue) take SIGINT with :func:`noted` while they
loop, and act on it there.

The command line takes SIGTERM (``timeout``, ``docker stop``, systemd) as a Ctrl-C too
(:func:`term_as_ctrl_c`): without it a run stopped that way died at once, and a create on the wire
was left uncertain. The library leaves SIGTERM alone unless that handler is in place."""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Callable, Iterator


def term_as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler that acts as Python's own SIGINT handler (raises KeyboardInterrupt): the
    command line installs it, so a stopped command saves what it can and exits 130, as on
    Ctrl-C; within :func:`noted` a SIGTERM is noted as a Ctrl-C is."""
    signal.default_int_handler(signum, frame)


def take_sigterm_as_ctrl_c() -> None:
    """Install :func:`term_as_ctrl_c` for SIGTERM where nobody else handles it (on the main
    thread, SIGTERM's default in place)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, term_as_ctrl_c)


@contextlib.contextmanager
def noted(on_ctrl_c: Callable[[], None]) -> Iterator[None]:
    """For the block, on the main thread with Python's own SIGINT handler in place: a Ctrl-C
    calls ``on_ctrl_c()`` instead of raising. It runs in the signal handler, between two
    bytecodes of the main thread, so it must only note the Ctrl-C and wake a wait, never take a
    lock the main thread may hold (a reentrant lock, or ``queue.SimpleQueue.put``, are safe).
    Python's handler is back after the block. Elsewhere (another thread, or an application's own
    handler in place) nothing changes. A SIGTERM is noted the same way where
    :func:`term_as_ctrl_c` handles it."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    handler = lambda signum, frame: on_ctrl_c()  # noqa: E731
    previous = signal.signal(signal.SIGINT, handler)
    term = signal.getsignal(signal.SIGTERM) is term_as_ctrl_c
    if term:
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if term:
            signal.signal(signal.SIGTERM, term_as_ctrl_c)
