"""``vidbatch spend``: the spend ledger of a state folder, by day, model and manifest."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from ..prices import Region
from .options import JsonCommand


@click.command(cls=JsonCommand)
@click.argument("manifest", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--since", metavar="DATE", help="Only creates on or after this UTC day (YYYY-MM-DD).")
@click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path), envvar="VIDBATCH_STATE", help="State folder [default: .vidbatch/ beside the manifest, or in the current folder; env VIDBATCH_STATE].")
@click.option("--sim", is_flag=True, help="Show what --sim runs would have spent (the simulator plays the global region).")
@click.option("--region", type=click.Choice([r.value for r in Region]), help="Price entries that kept no price in this region [default: the API host's].")
@click.option("--api-host", help="Price entries that kept no price in this host's region [default: env MINIMAX_API_HOST, else the config file's api_host].")
@click.option("--json", "as_json", is_flag=True, help="Print the ledger as one JSON object (amounts as decimal strings).")
def spend(manifest: Path | None, since: str | None, state_dir: Path | None, sim: bool, region: str | None, api_host: str | None, as_json: bool) -> None:
    """Show what renders cost: every create MiniMax accepted, by day, model and manifest.

    Each accepted create is an entry, priced by the table in effect when the run started (see
    `vidbatch prices`); reuse and skips create nothing and cost nothing. A create whose answer
    was lost (uncertain) is shown apart as possible spend: MiniMax may or may not have the task.
    Amounts are estimates from the price table, except where MiniMax reports what it billed
    (MiniMax-H3: seconds and images in each task's usage, priced with the same table): those
    are marked billed, and every total says how much of it is billed and how much estimated
    (--json: "billed" and "estimated" beside "spent"). A cancelled queued task is billed 0; a
    render with no price stays unpriced, never free. Days are UTC.

    With MANIFEST, only that manifest's creates (a folder: every manifest whose state is there).

    The ledger is plain SQLite too: table `spend` (one row per entry), view `spend_by_day`:

    \b
      sqlite3 .vidbatch/state.db "select * from spend_by_day"

    \b
    Examples:
      vidbatch spend
      vidbatch spend shots.toml --since 2026-12-01
      vidbatch spend --json | jq '.spent'
      vidbatch spend --json | jq '.billed.totals, .estimated.totals'
    """
    from .. import config, ledger, prices, project
    from ..errors import UsageError
    from ..state import Store
    from .options import shown

    since_at = None
    if since:
        try:
            day = dt.date.fromisoformat(since.strip())
        except ValueError:
            raise UsageError(f"--since must be a day such as 2026-12-01, not {since!r}") from None
        since_at = dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()
    manifests = None
    folder_of = Path.cwd()
    if manifest is not None:
        folder_of = manifest.resolve() if manifest.is_dir() else manifest.resolve().parent
        manifests = None if manifest.is_dir() else [manifest]
    folder = project.state_folder(folder_of, state_dir=state_dir, sim=sim)

    if sim:
        the_region: Region | None = Region(region) if region else prices.SIM_REGION
    else:
        the_region = Region(region) if region else prices.region_for_host(config.credentials(api_host).host)
    store = Store.open_for_reading(folder)
    if store is None:
        the_ledger = ledger.Ledger(())
    else:
        try:
            the_ledger = ledger.ledger(store, manifests=manifests, since=since_at, table=prices.load_table(), region=the_region)
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps({"state_dir": str(folder), "since": since, **the_ledger.to_json()}, indent=2, ensure_ascii=False))
        return
    click.echo(f"state: {shown(folder)}" + (f", since {since}" if since else ""))
    for line in the_ledger.lines(lambda p: shown(Path(p))):
        click.echo(line)
