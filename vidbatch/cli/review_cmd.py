"""``vidbatch review``: serve the report on loopback with pick and reject buttons (one
:class:`vidbatch.review.ReviewServer`), say where it is, stop on Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import click

from .options import shown
from .run_cmds import manifest_args


@click.command()
@manifest_args
@click.option("--sim", is_flag=True, help="Review the --sim runs (state in .vidbatch/sim, outputs in <output_dir>-sim).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 [default: a free one].")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
def review(manifests: tuple[Path, ...], variables: dict[str, str], state_dir: Path | None, sim: bool, port: int, open_browser: bool) -> None:
    """Serve the report on 127.0.0.1 with buttons to pick or reject each take.

    Every take of a shot with `takes = N` gets Pick, Reject and Clear buttons. A click writes
    the manifest's picks file (shots.toml -> shots.picks.toml, the file `vidbatch pick` writes:
    plain TOML to diff and commit) and the page reloads to show it. The page is built afresh on
    every load, from the state, the picks file and the videos as they are, so it is fine to
    review while a run goes on: a pick records the video the page showed, and a click on a take
    that has rendered again since the page loaded is refused with a message asking to reload
    (nothing is written). Nothing is sent to the API and the state is only read.

    The server listens on 127.0.0.1 only, serves only the page and the files it shows, and
    accepts a decision only with the random token of this session (embedded in the page), so
    no other web page can write picks. Stop it with Ctrl-C.

    \b
    Examples:
      vidbatch review shots.toml                  # prints http://127.0.0.1:PORT/
      vidbatch review shots.toml --open
      vidbatch review --sim examples/t2v-matrix.toml --port 8800
    """
    from ..api import load
    from ..errors import UsageError
    from ..review import ReviewServer

    ws = load(manifests, variables=variables, state_dir=state_dir, sim=sim)
    try:
        server = ReviewServer(ws, port=port)
    except OSError as e:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}; try another --port (0: any free one)") from None
    names = ", ".join(shown(Path(m.path)) for m in ws.manifests)
    click.echo(f"reviewing {names} at {server.url} (Ctrl-C to stop)")
    if open_browser:
        click.launch(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.httpd.server_close()
