"""``cancel``: cancel queued MiniMax-H3 tasks. Parse options, one library call, show the result."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import JsonCommand
from .run_cmds import _load, manifest_args


@click.command(cls=JsonCommand)
@manifest_args
@click.option("--job", "names", multiple=True, metavar="NAME", help="Cancel only this job's task (repeatable) [default: every job of the manifests].")
@click.option("--api-host", help="API host [default: env MINIMAX_API_HOST, else the config file's api_host, else https://api.minimaxi.com].")
@click.option("--sim", is_flag=True, help="Cancel tasks of --sim runs (the bundled simulator).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per job.")
def cancel(manifests: tuple[Path, ...], variables: dict[str, str], state_dir: Path | None, names: tuple[str, ...], api_host: str | None, sim: bool, as_json: bool) -> None:
    """Cancel the queued MiniMax-H3 tasks of a manifest's jobs: MiniMax does not charge them.

    Only a task that is still queued can be cancelled. A running one is reported as not
    cancellable and left to finish; the next run downloads its render as usual. v1 jobs (Hailuo,
    01 models) are reported too: the v1 API has no cancel. A cancelled job is recorded as failed,
    so a plain `run` does not pay for it again; `run --retry-failed` (or --force NAME) creates it
    again. While a run holds the state folder, the cancel is made at once and that run records it
    at its next poll.

    Exit code: 0 when every task asked about was cancelled or had none in flight; 1 when one is
    running (not cancellable) or could not be cancelled; 3 stopped: the API refused the account or
    key, or its host is wrong or unreachable; 2 usage, or an API key missing or malformed.

    \b
    Examples:
      vidbatch cancel shots.toml                   # every queued H3 task of the manifest
      vidbatch cancel shots.toml --job hero        # one job's task
      vidbatch cancel shots.toml --job a --job b   # several
      vidbatch cancel --sim shots.toml             # tasks of --sim runs
      vidbatch cancel shots.toml --json | jq 'select(.result=="running")'
    """
    from ..api import connect
    from ..runner import Cancelled

    ws = _load(manifests, variables, state_dir, sim)
    with connect(ws, api_host=api_host) as client:
        outcomes = ws.cancel(client, names=names)
    for o in outcomes:
        if as_json:
            click.echo(json.dumps(o.to_json(), ensure_ascii=False))
        else:
            click.echo(f"{o.name}: {o.result}: {o.message}")
    if not as_json:
        done = sum(o.result is Cancelled.CANCELLED for o in outcomes)
        click.echo(f"{done} cancelled of {len(outcomes)} jobs")
    if any(o.result in (Cancelled.RUNNING, Cancelled.ERROR) for o in outcomes):
        raise SystemExit(1)
