"""Option sets shared by several commands, as decorators (only click is imported here).

``@manifests_argument`` and ``@var_option`` are used by validate, render, plan, run and watch, so a
manifest is named and parameterised the same way everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

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
