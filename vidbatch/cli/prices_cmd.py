"""``vidbatch prices``: the price table in effect for a region, and where each row came from."""

from __future__ import annotations

import json

import click

from ..prices import Region, TableRow


@click.command()
@click.option(
    "--region",
    type=click.Choice([r.value for r in Region]),
    help="Show this region's prices [default: the region of the API host: global for api.minimax.io, mainland for api.minimaxi.com].",
)
@click.option("--api-host", help="Show the prices of this host's region [default: env MINIMAX_API_HOST, else the config file's api_host, else https://api.minimaxi.com].")
@click.option("--json", "as_json", is_flag=True, help="Print the table as one JSON object (prices as decimal strings).")
def prices(region: str | None, api_host: str | None, as_json: bool) -> None:
    """Show what each render costs, pay as you go, and where each price comes from.

    MiniMax bills by host: api.minimax.io in USD (the global region), api.minimaxi.com in CNY
    (mainland); the simulator (--sim, a loopback host) plays the global region. The table
    vidbatch ships holds MiniMax's published prices with the date they were taken. A render of
    a model with no known price (T2V-01, I2V-01 and their -Director and -live kin, S2V-01 today)
    is unpriced, never free.

    Your own prices (negotiated rates, new models, models with no published price) go in a
    [prices] table of the config file ($VIDBATCH_CONFIG, else
    $XDG_CONFIG_HOME/vidbatch/config.toml, else ~/.config/vidbatch/config.toml) or of a
    manifest. A manifest's rows win over the config file's, which win over the
    shipped ones, row by row; within one file the most specific row wins. For example:

    \b
      [[prices.global]]            # or [[prices.mainland]], in CNY
      model = "T2V-01"
      duration = 6                 # seconds; or per = "second" for a price per output second
      price = "0.20"               # also: mode, resolution ("any" by default), taken, source

    \b
    Examples:
      vidbatch prices                         # the region of your API host
      vidbatch prices --region mainland       # prices in CNY
      vidbatch prices --api-host https://api.minimax.io
      vidbatch prices --json | jq '.rows[] | select(.model == "MiniMax-Hailuo-02")'
    """
    from .. import config, prices as lib

    host = config.credentials(api_host).host
    the_region = lib.choose_region(region, host)
    table = lib.load_table()
    rows = table.in_effect(the_region)
    unpriced = table.unpriced_models(the_region)
    if as_json:
        out = {
            "region": the_region.value,
            "currency": the_region.currency,
            "host": host,
            "rows": [r.to_json() for r in rows],
            "unpriced_models": unpriced,
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    _print_table(the_region, f"--region {region}" if region else f"the region of {host}", rows, unpriced)


def _print_table(region: Region, why: str, rows: list[TableRow], unpriced: list[str]) -> None:
    from ..prices import Origin, money

    click.echo(f"Prices for the {region.value} region, in {region.currency} ({why}):")
    click.echo("")
    origins: list[Origin] = []
    for r in rows:
        for row in (r.row, *r.replaces):
            if row.origin not in origins:
                origins.append(row.origin)
    origins.sort(key=lambda o: -o.layer)  # numbered in the order they win: manifest, config, shipped

    def note(origin: Origin) -> str:
        return f"[{origins.index(origin) + 1}]"

    table_lines = [("model", "mode", "renders", "price", "from")]
    for r in rows:
        came = f"{r.row.origin.layer.label} {note(r.row.origin)}"
        if r.replaces:
            was = r.replaces[0]
            came += f", replaces {money(was.price)} ({was.origin.layer.label} {note(was.origin)})"
        table_lines.append((r.row.model, r.row.mode, r.row.spec(), money(r.row.price), came))
    widths = [max(len(line[i]) for line in table_lines) for i in range(4)]
    for model, mode, spec, price, came in table_lines:
        click.echo(f"  {model:<{widths[0]}}  {mode:<{widths[1]}}  {spec:<{widths[2]}}  {price:>{widths[3]}}  {came}")
    click.echo("")
    click.echo("Where they come from:")
    for i, origin in enumerate(origins, 1):
        click.echo(f"  [{i}] {origin.describe()}")
    if unpriced:
        click.echo("")
        click.echo(
            f"No price known for {', '.join(unpriced)}: their renders are unpriced (not free) "
            "until a [prices] table gives one (see --help)."
        )
