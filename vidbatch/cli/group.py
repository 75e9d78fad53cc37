"""The click group of ``vidbatch``: the command table loaded lazily, and the one error boundary.

A :class:`~vidbatch.errors.VidbatchError` becomes a clean ``error: ...`` line and the exit code
its class names. Anything else is a bug and keeps its traceback. ``VIDBATCH_DEBUG=1`` shows the
traceback of every error. :data:`vidbatch.cli.main` runs this group (after the no-op fast path).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from .. import __version__
from . import COMMANDS


class VidbatchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        from ..errors import EXIT_INTERRUPTED, VidbatchError

        try:
            return super().invoke(ctx)
        except VidbatchError as e:
            if os.environ.get("VIDBATCH_DEBUG"):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            if os.environ.get("VIDBATCH_DEBUG"):
                raise
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=VidbatchGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vidbatch")
def main() -> None:
    """Render many MiniMax Hailuo videos from a manifest, make-style.

    \b
    vidbatch plan shots.toml        what would be rendered, and why
    vidbatch run shots.toml         render what is new or changed, resume what is running
    vidbatch run --sim shots.toml   the same against the bundled simulator: no key, no cost

    \b
    Exit codes: 0 done; 1 some jobs failed (or plan --check: not up to date);
    2 invalid manifest or usage, or an API key missing or malformed (nothing was sent);
    3 the API refused the account or key, or its host is wrong or unreachable;
    4 state in use; 130 interrupted (Ctrl-C, or SIGTERM).

    The API key is read from MINIMAX_API_KEY, else from the config file (api_key = "...",
    chmod 600): $VIDBATCH_CONFIG, else $XDG_CONFIG_HOME/vidbatch/config.toml, else
    ~/.config/vidbatch/config.toml. The host from --api-host, MINIMAX_API_HOST or that file.
    The file must be yours and writable by you alone; with a key in it, readable by you alone.
    """
