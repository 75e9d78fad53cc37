"""The ``vidbatch`` command line: a thin shell over the library.

Each command lives in a module of this package and is imported only when it runs (or when
``--help`` lists it), so ``vidbatch --help`` loads click and nothing heavy. Commands parse options,
make one library call and render the result.

:data:`main` is the entry point (the console script, ``python -m vidbatch``, click's test
runner). Before click and the library are loaded it hands the arguments to the no-op fast path
(:mod:`vidbatch.cli.fast`): a ``run`` or ``plan --check`` with nothing to do is answered there,
printing and exiting exactly as the command would (issue 15). Everything else goes to the click
group (:mod:`vidbatch.cli.group`), which is the one error boundary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import click

#: vidbatch.errors.EXIT_INTERRUPTED (the exception tree is not imported before the no-op fast path)
EXIT_INTERRUPTED = 130

#: command name -> "module:attribute", in the order ``--help`` lists them.
COMMANDS = {
    "validate": "vidbatch.cli.manifest_cmds:validate",
    "render": "vidbatch.cli.manifest_cmds:render",
    "plan": "vidbatch.cli.run_cmds:plan",
    "run": "vidbatch.cli.run_cmds:run",
    "status": "vidbatch.cli.run_cmds:status",
    "gc": "vidbatch.cli.run_cmds:gc",
    "cancel": "vidbatch.cli.cancel_cmd:cancel",
    "watch": "vidbatch.cli.watch_cmd:watch",
    "report": "vidbatch.cli.report_cmd:report",
    "pick": "vidbatch.cli.pick_cmd:pick",
    "review": "vidbatch.cli.review_cmd:review",
    "sim": "vidbatch.cli.sim_cmd:sim",
    "prices": "vidbatch.cli.prices_cmd:prices",
    "spend": "vidbatch.cli.spend_cmd:spend",
}


def click_group() -> click.Group:
    """The click group of every command (imports click)."""
    from .group import main as group

    return group


class Main:
    """The ``vidbatch`` command: the no-op fast path, then the click group.

    Called (or its :meth:`main` called, as click's ``CliRunner`` does) in click's standalone mode,
    it first offers the arguments to :func:`vidbatch.cli.fast.answer`, which exits when it can
    answer; otherwise the click group runs. Any other attribute is the click group's, so ``main``
    stands for the group wherever one is expected (``main.get_command``, ``CliRunner.invoke``).
    """

    def __call__(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:
        return self.main(args, prog_name, **extra)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:
        if extra:
            return click_group().main(args, prog_name, **extra)
        # standalone mode: what a command prints and its exit code are its answer
        from ..interrupts import take_sigterm_as_ctrl_c

        take_sigterm_as_ctrl_c()  # docker stop, systemd, timeout: saved and exit 130, as on Ctrl-C
        try:
            from .fast import answer

            answer(list(sys.argv[1:] if args is None else args))
            group = click_group()
        except KeyboardInterrupt:  # a Ctrl-C while starting up, before the group's error boundary
            if os.environ.get("VIDBATCH_DEBUG"):
                raise
            sys.stderr.write("interrupted\n")
            sys.exit(EXIT_INTERRUPTED)
        return group.main(args, prog_name, **extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(click_group(), name)


main = Main()
