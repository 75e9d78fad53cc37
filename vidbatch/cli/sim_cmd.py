"""``vidbatch sim``: run the bundled MiniMax API simulator in the foreground.

Only click is imported at module level; the simulator is imported when the command runs, so
``vidbatch --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one."
)
@click.option(
    "--latency",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds from create to the final status.",
)
@click.option("--key", default=None, help="The API key to require. Default: accept any non-empty key.")
@click.option(
    "--rpm", default=None, type=click.IntRange(min=1), help="Creates allowed per rolling minute. Default: unlimited."
)
@click.option(
    "--fail-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1), help="Fraction of renders that fail."
)
@click.option(
    "--error-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of calls answered with a transient fault (HTTP 500/503, base_resp 1000/1013/1033).",
)
@click.option(
    "--url-ttl",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Download URL lifetime, seconds.",
)
@click.option(
    "--video-bytes", default=None, type=click.IntRange(min=0), help="Pad every video to at least this many bytes."
)
@click.option("--seed", default=None, type=int, help="Seed for --fail-rate and --error-rate draws.")
@click.option(
    "--balance",
    default="100.00",
    show_default=True,
    metavar="AMOUNT",
    callback=lambda ctx, param, value: _balance(value),
    help="The available_amount GET /account/query_balance answers, in the --region's currency; "
    "'none': that call answers 404, as for an account without it.",
)
@click.option(
    "--region",
    type=click.Choice(["global", "mainland"]),
    default="global",
    show_default=True,
    help="The region the simulator plays: its balance is in USD (global) or CNY (mainland). "
    "A loopback host cannot say which, so give vidbatch the same --region.",
)
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep tasks in this folder, so a restarted simulator still knows them. Default: in memory.",
)
@click.option(
    "--https",
    is_flag=True,
    help="Serve HTTPS with a certificate from a CA the simulator makes; prints the CA file to trust.",
)
@click.option(
    "--lost-create-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of creates (v1 and v2) whose task is made but whose answer is lost (connection cut).",
)
@click.option(
    "--second-client-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Fraction of v2 creates just before which a second client makes a task on the same account.",
)
@click.option(
    "--v2-errors",
    type=click.Choice(["http", "base_resp"]),
    default="http",
    show_default=True,
    help="How v2 calls refuse: an HTTP error status with a JSON body, or HTTP 200 with base_resp.",
)
def sim(
    host: str,
    port: int,
    latency: float,
    key: str | None,
    rpm: int | None,
    fail_rate: float,
    error_rate: float,
    url_ttl: float,
    video_bytes: int | None,
    seed: int | None,
    balance: str | None,
    region: str,
    data_dir: Path | None,
    https: bool,
    lost_create_rate: float,
    second_client_rate: float,
    v2_errors: str,
) -> None:
    """Serve a simulator of the MiniMax video API: no key, no cost, real HTTP.

    Prints its banner on stderr, then the base URL as the first line on stdout once it is
    ready (read that line to wait for it), then logs one line per call on stderr.
    Ctrl-C stops it. Videos are small real MP4 clips (640x360, 2 s) that name their task;
    each task's frames show its own colour, its id
    and a frame counter.
    With --data, tasks and their videos outlive the process, as MiniMax's do: stop and
    restart the simulator and every task is still there, still downloadable.
    It serves Video Generation V2 (MiniMax-H3: create, query, list, cancel) beside v1;
    each succeeded H3 render is charged against --balance at the price table's
    prices (a cancelled one never is), and a create the balance cannot cover is
    refused with 1008.

    With --https it serves TLS with a certificate from a CA it makes (kept in
    <data>/tls with --data, so clients keep trusting it across restarts) and prints
    the CA file on stderr: point other clients at it with REQUESTS_CA_BUNDLE
    (Python requests) or NODE_EXTRA_CA_CERTS (Node, e.g. MiniMax's own mmx CLI).

    \b
    Prompts can ask for an outcome:
      sim-flag-input    create refused with 1026 (input flagged)
      sim-fail          the render ends in status Fail
      sim-flag-output   the render ends in Fail with 1027 (output flagged)

    \b
    Examples:
      vidbatch sim                                  on http://127.0.0.1:8765, instant renders
      vidbatch sim --latency 120 --rpm 5            renders take 2 minutes; 5 creates a minute
      vidbatch sim --port 0 --error-rate 0.1        a free port; 10% of calls fail transiently
      vidbatch sim --data ~/.cache/vidbatch-sim     tasks kept across restarts
      vidbatch sim --https                          TLS; trust the CA file it prints
      vidbatch sim --lost-create-rate 0.1           10% of create answers lost (tasks made)
      vidbatch sim --balance 0.50                   an account with 0.50 USD left
      vidbatch sim --region mainland --balance none CNY prices; no balance to read

    \b
    In another shell:
      export MINIMAX_API_HOST=http://127.0.0.1:8765 MINIMAX_API_KEY=any
      vidbatch run shots.toml

    \b
    MiniMax's CLI against it (npm mmx-cli), after vidbatch sim --https:
      export NODE_EXTRA_CA_CERTS=<the CA file it printed>
      mmx video generate --base-url https://127.0.0.1:8765 --api-key any \\
          --model MiniMax-H3 --prompt "waves" --download waves.mp4

    \b
    Control endpoints (no auth), for scripts and tests:
      curl -s localhost:8765/_sim/stats
      curl -s -d '{"seconds": 60}' localhost:8765/_sim/advance
      curl -s -d '{"call": "create", "fault": "http503", "times": 2}' localhost:8765/_sim/faults
      curl -s -d '{"call": "v2_create", "fault": "drop_after_create"}' localhost:8765/_sim/faults
      curl -s -d '{}' localhost:8765/_sim/second_client     a v2 task made by another client
    """
    import contextlib
    import logging
    import signal
    import sys
    import threading

    from ..api import sim_v2_price
    from ..sim import SimConfig, running_simulator

    config = SimConfig(
        key=key,
        latency=latency,
        rpm=rpm,
        fail_rate=fail_rate,
        error_rate=error_rate,
        url_ttl=url_ttl,
        video_bytes=video_bytes,
        seed=seed,
        data_dir=data_dir,
        lost_create_rate=lost_create_rate,
        second_client_rate=second_client_rate,
        v2_errors=v2_errors,
        balance=balance,
        region=region,
        v2_price=sim_v2_price(region),
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("vidbatch.sim")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        with contextlib.ExitStack() as stack:
            try:
                server = stack.enter_context(running_simulator(config, host=host, port=port, https=https))
            except OSError as e:
                message = f"cannot listen on {host}:{port}: {e.strerror or e}; try another --port (0: any free one)"
                raise click.ClickException(message) from None
            click.echo(
                f"point vidbatch at it:  export MINIMAX_API_HOST={server.base_url} "
                f"MINIMAX_API_KEY={key if key is not None else 'any'}",
                err=True,
            )
            if server.ca_file is not None:
                click.echo(
                    f"HTTPS with a CA of its own; trust it:  export REQUESTS_CA_BUNDLE={server.ca_file} "
                    f"NODE_EXTRA_CA_CERTS={server.ca_file}",
                    err=True,
                )
            currency = "USD" if region == "global" else "CNY"
            click.echo(
                f"{region} region ({currency}), balance {balance + ' ' + currency if balance is not None else 'not served'}"
                + ("" if region == "global" else f": price runs with `vidbatch run --region {region}`"),
                err=True,
            )
            if data_dir is not None:
                click.echo(f"tasks kept in {data_dir} ({len(server.sim.tasks)} so far)", err=True)
            click.echo("Ctrl-C stops the simulator.", err=True)
            # The URL is the readiness signal, so it comes last: whoever reads it and then sends
            # Ctrl-C finds the banner already written.
            click.echo(server.base_url)
            sys.stdout.flush()
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
        click.echo("simulator stopped", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        logger.removeHandler(handler)


def _balance(value: str) -> str | None:
    """``--balance``: a decimal amount (kept as the string the simulator answers), or ``none``."""
    if value.strip().lower() == "none":
        return None
    from ..prices import read_amount

    amount = read_amount(value)
    if amount is None or amount < 0:
        raise click.BadParameter(f"must be an amount such as 12.50, or none; not {value!r}")
    return str(amount)
