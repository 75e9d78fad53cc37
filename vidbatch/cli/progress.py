"""How a run looks: a live status line on a terminal, plain log lines otherwise, JSON lines for
scripts. The runner reports events; these classes decide what a person (or a script) sees."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import click

from ..events import EventKind as K
from .options import shown

#: Events worth a line of their own (``skip`` and ``status`` would drown a big run).
NOTABLE: dict[str, str] = {
    K.SUBMITTED: "submitted",
    K.RENDERED: "rendered",
    K.DOWNLOADED: "downloaded",
    K.REUSED: "reused",
    K.FAILED: "FAILED",
    K.UNCERTAIN: "UNCERTAIN",
    K.RATE_LIMITED: "rate-limited",
    K.RETRY: "retry",
    K.ERROR: "ERROR",
    K.ACCOUNT_STOP: "STOPPED",
    K.INTERRUPTED: "interrupted",
    K.DROPPED: "dropped",
    K.STATE_ERROR: "STATE ERROR",
    K.UNSAVED: "UNSAVED",
    K.WAIT: "waits",
    K.BLOCKED: "BLOCKED",
    K.JOINED: "joined",
    K.WARNING: "warning",
}
STYLES: dict[str, str] = {
    K.FAILED: "red",
    K.UNCERTAIN: "yellow",
    K.ERROR: "red",
    K.ACCOUNT_STOP: "red bold",
    K.RATE_LIMITED: "yellow",
    K.RETRY: "yellow",
    K.INTERRUPTED: "yellow",
    K.STATE_ERROR: "red bold",
    K.UNSAVED: "red bold",
    K.BLOCKED: "yellow",
    K.WARNING: "yellow",
}


def clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def counts_line(p: Any) -> str:
    if p is None:
        return ""
    left = ""
    if p.done and p.total > p.done:
        rate = p.elapsed / p.done
        left = f" · ~{clock(rate * (p.total - p.done - p.failed - p.uncertain))} left"
    parts = [f"done {p.done}/{p.total}", f"running {p.running}", f"queued {p.queued}"]
    if p.failed:
        parts.append(f"failed {p.failed}")
    if p.uncertain:
        parts.append(f"uncertain {p.uncertain}")
    return " · ".join(parts) + f" · {clock(p.elapsed)} elapsed{left}"


def event_line(e: Any, started: float) -> str:
    label = NOTABLE.get(e.kind, e.kind)
    who = f"{e.job}  " if e.job else ""
    message = shown(e.data["path"]) if e.data.get("path") else e.message
    return f"[{clock(e.at - started)}] {label:<12} {who}{message}"


class PlainReporter:
    """One line per notable event, on stderr."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.started = time.time()

    def __call__(self, e: Any) -> None:
        if e.kind == K.START:
            click.echo(f"vidbatch: {e.message}", file=self.stream)
        elif e.kind in NOTABLE:
            click.echo(event_line(e, self.started), file=self.stream)

    def close(self) -> None:
        pass


class JsonReporter:
    """One JSON object per event on stdout (for scripts and ``jq``)."""

    def __call__(self, e: Any) -> None:
        click.echo(json.dumps(e.to_json(), sort_keys=True))

    def close(self) -> None:
        pass


class LiveReporter:
    """A live status line (rich) with notable events printed above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self._text = Text
        self.console = Console(stderr=True)
        self.live = Live("", console=self.console, refresh_per_second=4, transient=True)
        self.live.start()
        self.started = time.time()
        self.progress = None

    def __call__(self, e: Any) -> None:
        if e.progress is not None:
            self.progress = e.progress
        if e.kind == K.START:
            self.console.print(self._text(f"vidbatch: {e.message}"))
        elif e.kind in NOTABLE:
            self.console.print(self._text(event_line(e, self.started), style=STYLES.get(e.kind, "")))
        self.live.update(self._text(counts_line(self.progress), style="bold"))

    def close(self) -> None:
        self.live.stop()


def make_reporter(as_json: bool) -> Any:
    if as_json:
        return JsonReporter()
    if sys.stderr.isatty():
        return LiveReporter()
    return PlainReporter()
