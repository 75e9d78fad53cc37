"""Money for ``plan`` and ``run``: the options (``--max-cost``, ``--unpriced-as``, ``--region``),
the budget of a command, and the lines it prints. Only click is imported at module level."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

REGIONS = ("global", "mainland")


def region_option(f: F) -> F:
    """``--region``: whose prices apply, when the host does not say (a proxy, say)."""
    return click.option(
        "--region",
        type=click.Choice(REGIONS),
        help="Price renders in this region's currency [default: the API host's: global (USD) for api.minimax.io, mainland (CNY) for api.minimaxi.com; --sim plays global].",
    )(f)


def money_options(f: F) -> F:
    """``--max-cost``, ``--unpriced-as`` and ``--region`` (run, and watch when it takes them)."""
    f = region_option(f)
    f = click.option(
        "--unpriced-as",
        metavar="AMOUNT",
        help="With --max-cost: count each render with no known price as AMOUNT (0 to leave them out).",
    )(f)
    return click.option(
        "--max-cost",
        metavar="AMOUNT",
        help="Refuse to start, before any call, when the plan would cost more than AMOUNT (in the region's currency; see `vidbatch prices`).",
    )(f)


def host_of(client: Any = None, api_host: str | None = None) -> str:
    """The API host whose region prices a command: the client's, else the configured one."""
    if client is not None and getattr(client, "host", None):
        return str(client.host)
    from .. import config

    return config.credentials(api_host).host


def budget(
    manifests: Any,
    *,
    client: Any = None,
    api_host: str | None = None,
    sim: bool = False,
    region: str | None = None,
    max_cost: str | None = None,
    unpriced_as: str | None = None,
) -> Any:
    """The :class:`~vidbatch.costing.Budget` of a command over ``manifests`` (no call is made;
    watch mode gives none at start: the session adds each manifest's prices as it plans it)."""
    from .. import costing, prices

    host = "http://127.0.0.1" if sim and client is None else host_of(client, api_host)
    return costing.Budget.for_workspace(
        manifests,
        host,
        region=region,
        sim_region=prices.SIM_REGION,
        max_cost=max_cost,
        unpriced_as=unpriced_as,
    )


def balance_warning(client: Any, cost: Any) -> str | None:
    """What to say when ``cost`` (a costing.PlanCost) exceeds the account's balance, read now
    through ``client``; None when it does not or the balance cannot be read. Called from the
    confirm step, after --max-cost passed: a refused plan makes no call at all."""
    from ..costing import balance_warning as warning

    read = getattr(client, "query_balance", None)  # in the plan's region: a loopback host cannot say
    return warning(cost, read(cost.region) if read is not None else None)


def spend_line(ws: Any, started: float, what: str = "this run") -> str | None:
    """The run summary's spend line: what this run spent (creates accepted since ``started``),
    what it may have spent (uncertain creates), and the manifests' total so far."""
    from .. import ledger
    from ..state import Store

    store = Store.open_for_reading(ws.state_dir)
    if store is None:
        return None
    try:
        if not ledger.read_entries(store, since=started):  # created nothing: read no more (the no-op, issue 15)
            return None
        return ledger.run_spend(store, since=started, manifests=[m.path for m in ws.manifests]).line(what)
    finally:
        store.close()


def spent_by(ws: Any, store: Any) -> Any:
    """The :class:`~vidbatch.ledger.Ledger` of ``ws``'s manifests in ``store`` (a read-only
    store, or None), every run so far; without ``ws``, of the whole state (``status``)."""
    from .. import ledger

    if store is None:
        return ledger.Ledger(())
    return ledger.ledger(store, manifests=[m.path for m in ws.manifests] if ws is not None else None)
