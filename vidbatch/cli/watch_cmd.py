"""``watch``: parse options, run one :class:`vidbatch.watch.Watcher`, show its events.

The progress display is ``run``'s (:mod:`.progress`): a live status line on a terminal, plain
lines otherwise, JSON lines with ``--json``. The watcher's own events (what changed, a manifest's
error, what is ignored) and the runner's ``idle`` are shown as ``vidbatch:`` lines beside it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import click

from . import money
from .options import JsonCommand, var_option
from .run_cmds import (
    counted,
    report_option,
    resume_hint,
    run_options,
    with_report,
)

STYLES = {"invalid": "red", "refused": "red", "warning": "yellow", "removed": "yellow", "stale": "yellow", "declined": "yellow", "ignored": "bright_black"}


@click.command(cls=JsonCommand)
@click.argument("folder", required=False, default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@var_option
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="VIDBATCH_STATE",
    help="State folder [default: FOLDER/.vidbatch; env VIDBATCH_STATE].",
)
@run_options
@money.money_options
@report_option
@click.option(
    "--debounce",
    type=click.FloatRange(0),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Quiet time after a change before planning (editors save in several writes).",
)
def watch(
    folder: Path,
    variables: dict[str, str],
    state_dir: Path | None,
    api_host: str | None,
    concurrency: int,
    rpm: float | None,
    poll_interval: float | None,
    retry_failed: bool,
    force: tuple[str, ...],
    max_renders: int | None,
    resubmit_uncertain: bool,
    sim: bool,
    sim_latency: float,
    as_json: bool,
    yes: bool,
    wait: bool,
    report_path: Path | None,
    max_cost: str | None,
    unpriced_as: str | None,
    region: str | None,
    debounce: float,
) -> None:
    """Render the manifests in FOLDER, then again whenever they or their inputs change.

    At start every manifest in FOLDER (default: the current folder) is planned and run, as `run`
    would. Then saving a manifest, or changing a file it reads (an image, a CSV/JSON of rows, an
    included template), plans that manifest again and renders what changed. Dropping a new
    manifest in starts it; deleting one stops planning it.

    Renders already running are never cancelled or created again by an edit: they are collected,
    and kept in the state for reuse should the edit be undone. A manifest with an error is
    reported and skipped until it is fixed; the others go on. What watch writes itself (outputs,
    the state folder, the --report page, stdout or stderr redirected to a file in FOLDER) is not
    watched nor taken for a manifest, so its own writes never trigger it.

    The state folder is held for the whole session: a `vidbatch run` on it meanwhile exits with
    code 4. Ctrl-C stops submitting and exits; running tasks are saved, and `vidbatch run` or
    another `vidbatch watch` resumes them. --force, --retry-failed and --resubmit-uncertain apply
    to the plans made at start; --max-renders and --max-cost bound every plan, the one made at
    start and each one an edit makes: a plan over either is not started (nothing is sent for
    it, and the message says why, as `run` would) while watching goes on.

    \b
    Exit codes: 130 interrupted (Ctrl-C or SIGTERM); 3 stopped: the API refused the account or
    key, or its host is wrong or unreachable; 4 the state folder is in use by another run;
    2 usage, an API key missing or malformed (nothing was sent), or FOLDER deleted or moved
    away while watching (running tasks are saved); 1 the state database was
    lost or could not be written (no new renders; those running were collected first).

    \b
    Examples:
      vidbatch watch --sim shots/                 # try it: bundled simulator, no key
      vidbatch watch shots/ --rpm 20 --max-renders 20
      vidbatch watch shots/ --max-cost 5            # no plan over 5 (USD or CNY) starts
      vidbatch watch --json | jq -c 'select(.event=="downloaded")'
    """
    from ..watch import Watcher
    from .progress import counts_line, make_reporter
    from .run_cmds import _client, confirm_with_cost, make_run_options

    options = make_run_options(**locals())
    reporter = _WatchReporter(make_reporter(as_json), as_json)

    def confirm(manifest: Any, the_plan: Any) -> bool:
        with reporter.paused():
            return confirm_with_cost(
                the_plan, budget.with_manifests([manifest]), client,
                max_renders=max_renders, yes=yes, sim=sim, as_json=as_json, prefix=f"{manifest.path.name}: ",
            )

    from .. import project

    state_folder = project.state_folder(Path(folder).expanduser().resolve(), state_dir=state_dir, sim=sim)
    with _client(sim, sim_latency, api_host, state_folder) as client:
        budget = money.budget([], client=client, sim=sim, region=region, max_cost=max_cost, unpriced_as=unpriced_as)
        watcher: Watcher | None = None

        def workspace() -> Any:
            assert watcher is not None
            return watcher.workspace()

        on_event, writer = with_report(reporter, workspace, report_path)
        try:
            watcher = Watcher(
                folder, client, options, variables=variables, state_dir=state_dir, sim=sim,
                debounce=debounce, on_event=on_event, confirm=confirm, wait_for_lock=wait, budget=budget,
                written=[report_path] if report_path is not None else [],
            )
            started = time.time()
            result = watcher.run()
        finally:
            reporter.close()
            if writer is not None and watcher is not None:
                writer.close()

    p = result.progress
    click.echo(f"vidbatch: {counts_line(p)}", err=True)
    click.echo(f"vidbatch: {counted(p.created, 'render')} created in this session{' (simulated)' if sim else ''}", err=True)
    spent = money.spend_line(watcher.workspace(), started, "this session") if watcher is not None else None
    if spent:
        click.echo(f"vidbatch: {spent}{' (simulated)' if sim else ''}", err=True)
    if result.stopped == "interrupted":
        hint = resume_hint("watch", [folder], variables, state_dir, sim)
        if result.manifests:
            hint = resume_hint("run", result.manifests, variables, state_dir, sim) + ", or: " + hint
        click.echo(f"vidbatch: interrupted; running tasks are saved. Resume with: {hint}", err=True)
    elif result.stopped == "account":
        click.echo(f"vidbatch: stopped: {result.stop_message}", err=True)
    elif result.stopped in ("state", "gone"):
        click.echo(f"error: {result.stop_message}", err=True)
    sys.exit(result.exit_code)


class _WatchReporter:
    """``run``'s reporter, plus a ``vidbatch:`` line for each watcher event and each ``idle``."""

    def __init__(self, inner: Any, as_json: bool) -> None:
        self.inner = inner
        self.as_json = as_json

    def __call__(self, e: Any) -> None:
        from ..watch import WatchEvent

        if self.as_json or not (isinstance(e, WatchEvent) or e.kind == "idle"):
            self.inner(e)
            return
        message = e.message
        if e.kind == "idle":
            from .progress import counts_line

            message = f"{message} ({counts_line(e.progress)})" if e.progress is not None else message
        for i, line in enumerate(message.splitlines()):
            self._line(("vidbatch: " if i == 0 else "  ") + line, STYLES.get(e.kind))
        if e.kind == "idle":
            self.inner(e)  # the live status line shows the settled counts too

    def _line(self, text: str, style: str | None) -> None:
        console = getattr(self.inner, "console", None)  # the live display prints above its line
        if console is not None:
            from rich.text import Text

            console.print(Text(text, style=style or ""))
        else:
            click.echo(text, err=True)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The live display, if any, stopped for a question (it would redraw over it)."""
        live = getattr(self.inner, "live", None)
        if live is not None:
            live.stop()
        try:
            yield
        finally:
            if live is not None:
                live.start()

    def close(self) -> None:
        self.inner.close()
