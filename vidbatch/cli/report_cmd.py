"""``vidbatch report``: write the HTML report of a manifest's jobs (one call to
:func:`vidbatch.report.write_report`) and say where it went."""

from __future__ import annotations

from pathlib import Path

import click

from .options import shown
from .run_cmds import manifest_args


@click.command()
@manifest_args
@click.option("--sim", is_flag=True, help="Report on the --sim runs (state in .vidbatch/sim, outputs in <output_dir>-sim).")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page [default: report.html in the first manifest's output_dir].",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser afterwards.")
def report(manifests: tuple[Path, ...], variables: dict[str, str], state_dir: Path | None, sim: bool, output: Path | None, open_browser: bool) -> None:
    """Write a static HTML page showing every job with its video, side by side.

    One self-contained file (no server, no network: open it from disk) with, for each job: the
    video in place, its name, the prompt with camera commands highlighted (and bracketed words
    that are not camera commands marked as likely typos), model, mode, duration, resolution,
    state, the error of a failed job (message, code, trace id), when it was rendered, task id and
    file size. Jobs not rendered yet show a placeholder. At the top: counts by state, renders
    created, render time; state filters and a search box (with JavaScript; without it every job
    is simply listed).

    The page goes in the first manifest's output_dir by default, beside the videos: the links
    are relative, so the folder can be moved, zipped or shared as it is. --sim reports go in
    <output_dir>-sim, so simulated and real reports never overwrite each other. -o (and run
    --report) never writes over a job's video, a cut, a recorded output or a manifest: such a
    FILE stops with exit 2 before anything is written. Nothing is sent and the state is only
    read; reporting while a run is going on is fine.

    \b
    Examples:
      vidbatch report shots.toml                    # -> renders/report.html
      vidbatch report shots.toml --open
      vidbatch report --sim examples/t2v-matrix.toml --open
      vidbatch report a.toml b.toml -o review/index.html
      vidbatch run shots.toml --report renders/report.html   # kept current while rendering
    """
    from ..api import load
    from ..report import counts_line, default_report_path, write_report

    ws = load(manifests, variables=variables, state_dir=state_dir, sim=sim)
    out = (output or default_report_path(ws)).expanduser().absolute()
    written = write_report(ws, out)
    click.echo(f"wrote {shown(out)} ({counts_line(written.summary)})")
    if open_browser:
        click.launch(out.as_uri())

