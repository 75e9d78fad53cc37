"""Ctrl-C as a message, not an exception, for loops that can stop cleanly at known points.

Python's own SIGINT handler raises KeyboardInterrupt at whatever bytecode the main thread runs
next. One raised inside a weakref callback or a ``__del__`` (the callback that drops a freed
asyncio task from asyncio's set of tasks, say) is printed and dropped: a first Ctrl-C of a run
was lost that way (issue 15). One raised in the middle of bookkeeping leaves it half done. The
runner (at its waits) and the watcher (at its queue) take SIGINT with :func:`noted` while they
loop, and act on it there."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator


@contextlib.contextmanager
def noted(on_ctrl_c: Callable[[], None]) -> Iterator[None]:
    """For the block, on the main thread with Python's own SIGINT handler in place: a Ctrl-C
    calls ``on_ctrl_c()`` instead of raising. It runs in the signal handler, between two
    bytecodes of the main thread, so it must only note the Ctrl-C and wake a wait, never take a
    lock the main thread may hold (a reentrant lock, or ``queue.SimpleQueue.put``, are safe).
    Python's handler is back after the block. Elsewhere (another thread, or an application's own
    handler in place) nothing changes."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: on_ctrl_c())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
