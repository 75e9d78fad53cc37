"""The no-op fast path of the command line: ``run`` and ``plan --check`` with nothing to do.

A no-op ``run`` or ``plan --check`` is the command people put in loops (a Makefile, a CI gate,
an editor's save hook), so it is answered here, before click and the library are imported
(issue 15). :func:`answer` reads the plain forms of those commands, asks
:func:`vidbatch.noop.check` whether there is nothing to do, and if so prints what the command
prints and exits as it does. For anything it does not fully understand (another command or
option, a value click would judge, a folder, ``--json``, a terminal, which gets a live display)
and for every doubt :mod:`vidbatch.noop` raises, it returns, and the click command runs as if
this module did not exist. ``tests/test_noop.py`` runs each case both ways and compares them.

Only the standard library and :mod:`vidbatch.noop` are imported here.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable

from .. import noop

#: vidbatch.errors.EXIT_INTERRUPTED (importing the exception tree would cost the no-op more than it does)
EXIT_INTERRUPTED = 130
#: ``--var`` names (vidbatch.cli.options.parse_vars, which refuses others: then click answers).
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_INTEGER = re.compile(r"[0-9]+")


def _at_least(low: float, *, integer: bool = False, high: float | None = None) -> Callable[[str], bool]:
    """A value test as click's FloatRange/IntRange, for plainly written numbers only."""

    def test(text: str) -> bool:
        if not (_INTEGER if integer else _NUMBER).fullmatch(text):
            return False
        value = float(text)
        return value >= low and (high is None or value <= high)

    return test


#: ``run``'s options that change nothing when there is nothing to do, with their value tests
#: (vidbatch.cli.run_cmds.run_options); None: a flag.
RUN_OPTIONS: dict[str, Callable[[str], bool] | None] = {
    "--poll-interval": _at_least(0),
    "--rpm": _at_least(0.1),
    "--concurrency": _at_least(1, integer=True, high=1000),
    "-j": _at_least(1, integer=True, high=1000),
    "--max-renders": _at_least(0, integer=True),
    "--sim-latency": _at_least(0),
    "--retry-failed": None,
    "--resubmit-uncertain": None,
    "--yes": None,
    "-y": None,
    "--wait": None,
}
#: ``plan``'s, with ``--check`` (which must be given).
PLAN_OPTIONS: dict[str, Callable[[str], bool] | None] = {"--check": None, "--retry-failed": None}


def answer(args: list[str]) -> None:
    """Exit as the command would when ``args`` is a ``run`` or ``plan --check`` with nothing to
    do; else return."""
    started = time.monotonic()
    parsed = parse(args)
    if parsed is None:
        return
    command, manifests, variables = parsed
    if command == "run" and (sys.stderr.isatty() or (sys.stderr.encoding or "").lower().replace("-", "") != "utf8"):
        return  # a terminal gets the live display; click.echo handles other encodings
    try:
        finished = noop.check(manifests, variables, run=command == "run")
    except noop.Declined:
        return
    except KeyboardInterrupt:  # as the click group's error boundary (vidbatch.cli.group)
        if os.environ.get("VIDBATCH_DEBUG"):
            raise
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    if command == "run":
        sys.stderr.write("".join(line + "\n" for line in run_lines(finished, time.monotonic() - started)))
        sys.stderr.flush()
    sys.exit(0)


def parse(args: list[str]) -> tuple[str, list[str], dict[str, str]] | None:
    """(command, manifests, --var values) of a plain ``run`` or ``plan --check``; None for
    anything else."""
    if not args or args[0] not in ("run", "plan"):
        return None
    command = args[0]
    known = RUN_OPTIONS if command == "run" else PLAN_OPTIONS
    manifests: list[str] = []
    variables: dict[str, str] = {}
    given: set[str] = set()
    rest = iter(args[1:])
    for arg in rest:
        if not arg.startswith("-") or arg == "-":
            manifests.append(arg)
            continue
        name, has_value, value = arg.partition("=")
        if name == "--var" or name in known and known[name] is not None:
            if not has_value:
                following = next(rest, None)
                if following is None:
                    return None
                value = following
            if name == "--var":
                key, sep, text = value.partition("=")
                if not sep or not _VAR_NAME.fullmatch(key.strip()):
                    return None
                variables[key.strip()] = text
                continue
            test = known[name]
            if test is None or not test(value):
                return None
        elif name not in known or has_value:
            return None
        given.add(name)
    if not manifests or (command == "plan" and "--check" not in given):
        return None
    return command, manifests, variables


def run_lines(finished: noop.Finished, elapsed: float) -> list[str]:
    """What ``run`` prints on stderr when every job is done and nothing was created: the
    runner's start line (vidbatch.runner), the counts (vidbatch.cli.progress.counts_line), and
    the result (vidbatch.cli.run_cmds._print_result). tests/test_noop.py holds them to it."""
    n = finished.distinct
    done = f"all {n} jobs done" if n != 1 else "1 job done"
    dirs = ", ".join(sorted({_shown(d) for d in finished.output_dirs}))
    return [
        f"vidbatch: {finished.jobs} job{'' if finished.jobs == 1 else 's'}, 0 to render",
        f"vidbatch: done {n}/{n} · running 0 · queued 0 · {_clock(elapsed)} elapsed",
        "vidbatch: 0 renders created in this run",
        f"vidbatch: {done}; outputs in {dirs}",
    ]


def _clock(seconds: float) -> str:
    """As vidbatch.cli.progress.clock."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _shown(path: str) -> str:
    """As vidbatch.cli.options.shown: relative to the current folder unless that climbs out."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
