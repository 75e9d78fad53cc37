"""Option sets shared by several commands, as decorators (only click is imported here).

``@manifests_argument`` and ``@var_option`` are used by validate, render, plan, run and watch, so a
manifest is named and parameterised the same way everywhere. :class:`JsonCommand` is the command
class of every command with ``--json``: under it, an error is one JSON object too.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_vars(values: Iterable[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` as a dict; a later KEY wins. The value is everything after the first
    ``=`` and may be empty. Raises click.BadParameter. (Names the templates reserve, such as
    ``env``, are refused by the manifest loader, which owns that rule.)"""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--var")
        if not _VAR_NAME.match(key):
            raise click.BadParameter(
                f"{key!r} is not a variable name (letters, digits, underscores; not starting with a digit)",
                param_hint="--var",
            )
        out[key] = value
    return out


def _vars_callback(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    return parse_vars(value)


def var_option(f: F) -> F:
    """``--var KEY=VALUE`` (repeatable), passed to the command as ``variables: dict[str, str]``."""
    return click.option(
        "--var",
        "variables",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_vars_callback,
        help="Set a template variable, overriding the manifest's [vars]. Repeatable.",
    )(f)


def manifests_argument(f: F) -> F:
    """One or more ``MANIFEST`` paths, passed as ``manifests: tuple[Path, ...]``."""
    return click.argument(
        "manifests",
        nargs=-1,
        required=True,
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="MANIFEST...",
    )(f)


def shown(path: Path | str) -> str:
    """A path as the user would type it: relative to the current folder unless that climbs out."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


class JsonCommand(click.Command):
    """A command with ``--json``. Under ``--json`` a usage error (a bad option, a missing file)
    or a :class:`~vidbatch.errors.VidbatchError` is printed as one JSON object on stdout,
    ``{"error": message, "exit_code": n}`` (plus ``problems`` for an invalid manifest), with
    the exit code it has without ``--json``: a script reading stdout never gets plain text.
    ``VIDBATCH_DEBUG=1`` still shows the traceback."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any) -> click.Context:
        as_json = "--json" in args
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as e:
            if not as_json:
                raise
            echo_json_error(e.format_message(), e.exit_code)
            raise click.exceptions.Exit(e.exit_code) from None

    def invoke(self, ctx: click.Context) -> Any:
        from ..errors import ManifestError, VidbatchError

        try:
            return super().invoke(ctx)
        except VidbatchError as e:
            if not ctx.params.get("as_json") or os.environ.get("VIDBATCH_DEBUG"):
                raise
            problems = e.problems if isinstance(e, ManifestError) else ()
            echo_json_error(str(e), e.exit_code, problems)
            raise click.exceptions.Exit(e.exit_code) from None


def echo_json_error(message: str, exit_code: int, problems: Sequence[Any] = ()) -> None:
    doc: dict[str, Any] = {"error": message, "exit_code": exit_code}
    if problems:
        doc["problems"] = [p.to_json() for p in problems]
    click.echo(json.dumps(doc, ensure_ascii=False))
