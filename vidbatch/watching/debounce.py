"""Debouncing: editors save a file in several writes, so paths that arrive within ``quiet``
seconds of each other are one batch, handed out once nothing has arrived for ``quiet`` seconds,
or at the latest ``LONGEST_WAIT`` seconds (``quiet``, if longer) after its first path: a file
written without pause (a log in the folder) must not hold back an edit forever."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

#: How long the watcher waits for an event when no batch is pending (it also checks, that often,
#: that the session is still alive).
IDLE_WAIT = 0.5
#: The longest a batch waits for the folder to go quiet.
LONGEST_WAIT = 3.0


class Debouncer:
    def __init__(self, quiet: float, clock: Callable[[], float] = time.monotonic):
        self.quiet = quiet
        self._clock = clock
        self._pending: set[Path] = set()
        self._deadline: float | None = None
        self._latest: float | None = None  # the bound of the pending batch

    def add(self, paths: Iterable[Path]) -> None:
        """Note paths; any new path pushes the batch back by ``quiet`` seconds, up to its bound."""
        fresh = set(paths)
        if fresh:
            now = self._clock()
            if self._latest is None:
                self._latest = now + max(LONGEST_WAIT, self.quiet)
            self._pending |= fresh
            self._deadline = min(now + self.quiet, self._latest)

    def wait_time(self) -> float:
        """How long to wait for the next path before calling :meth:`take`."""
        if self._deadline is None:
            return IDLE_WAIT
        return max(0.0, self._deadline - self._clock())

    def take(self) -> set[Path]:
        """The batch, once it is due (quiet long enough); else an empty set."""
        if self._deadline is None or self._clock() < self._deadline:
            return set()
        batch, self._pending, self._deadline, self._latest = self._pending, set(), None, None
        return batch
