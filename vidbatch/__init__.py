"""vidbatch: declarative, make-like batch rendering for MiniMax Hailuo video generation.

The Python API (documented in :mod:`vidbatch.api` and the README's "Python API" section)::

    import vidbatch

    ws = vidbatch.load(["shots.toml"], sim=True)
    print(ws.plan().summary())
    with vidbatch.connect(ws) as client:
        result = ws.run(client, on_event=print)
    print([(job.name, job.state) for job in ws.status()])

    with vidbatch.simulator() as sim:   # the API's simulator; sim.url, sim.key, sim.client()
        ...

Importing vidbatch is cheap: the names below load their modules on first use (``vidbatch
--help`` imports neither requests nor SQLite nor the templates).
"""

from __future__ import annotations

__version__ = "0.1.0"

# Not typing.TYPE_CHECKING: typing is not imported by the no-op fast path (issue 15); type
# checkers read any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .api import (
        EventKind,
        JobStatus,
        Plan,
        RunEvent,
        RunOptions,
        RunResult,
        Simulator,
        VidbatchError,
        Workspace,
        connect,
        load,
        simulator,
    )

#: The public API: every name is an attribute of :mod:`vidbatch.api`, loaded on first use.
__all__ = [
    "EventKind",
    "JobStatus",
    "Plan",
    "RunEvent",
    "RunOptions",
    "RunResult",
    "Simulator",
    "VidbatchError",
    "Workspace",
    "connect",
    "load",
    "simulator",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        # imported by name, not `from . import api`: every module that reads __version__ imports
        # this package, and must not seem to depend on the API above it (import contract)
        value = getattr(importlib.import_module("vidbatch.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidbatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
