"""A plan's bill: what each billable render costs, the totals, what reuse and skips saved, and the
spending caps checked before any call.

:func:`plan_cost` prices every job of a :class:`~vidbatch.plan.Plan` with the table in effect
(:mod:`vidbatch.prices`; a manifest's ``[prices]`` table applies to that manifest's jobs only):

- a *billable* job (``submit``, ``resubmit``) is on the bill; so is a chained shot that waits
  for its source's video (``wait``), as if its frame were new: the bill is then an upper bound
  ("up to"), since an unchanged frame gives a render already paid for;
- a job the plan serves without a new render (``skip``, ``reuse``, ``download``, ``resume``) is
  *saved*: what rendering everything from scratch would have cost on top of this plan;
- a job held back (``failed`` without ``--retry-failed``, ``uncertain``) is neither.

A render no row prices is unpriced, never free: it is counted apart in every total, and a cap
(:class:`Budget`, ``--max-cost``) refuses a plan with unpriced renders unless the user says what
each counts as (``--unpriced-as``).

:class:`Budget` is what a session needs to admit a plan on money grounds: the region, the price
tables, the cap, and the balance read before the run. :meth:`Budget.admit` prices the plan,
refuses it (a :class:`~vidbatch.errors.UsageError`, exit 2) before any call when it costs more
than the cap, and writes the price of each billable render into the state
(:func:`vidbatch.ledger.write_quotes`), so each create MiniMax accepts becomes a spend entry at
that price (see :mod:`vidbatch.ledger`).

The text lines :meth:`PlanCost.lines` returns are for the CLI to print; this module never prints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import rules
from .errors import UsageError
from .plan import Action, Plan, PlannedJob
from .prices import Balance, Estimate, EstimateLine, Layer, Origin, Price, PriceTable, Region, Render, Unpriced, load_table, money, read_amount, region_for_host, shortfall

log = logging.getLogger(__name__)

#: Actions that serve a job without a new render: what they would have cost is saved.
SAVING = (Action.SKIP, Action.REUSE, Action.DOWNLOAD, Action.RESUME)
#: Actions that hold a job back this time (it is neither billed nor saved).
HELD = (Action.FAILED, Action.UNCERTAIN)


def render_of(job: Any) -> Render:
    """The shape of the render a manifest job asks for (what its price depends on)."""
    return Render.of(rules.summarize(job.identity_request()))


def manifest_tables(manifests: Iterable[Any], base: PriceTable) -> dict[str, PriceTable]:
    """The table in effect for each manifest (by path): ``base`` under its ``[prices]`` table,
    which the manifest loader keeps as ``Manifest.prices`` (None or absent: ``base``)."""
    return {str(m.path): base.with_manifest(getattr(m, "prices", None), m.path) for m in manifests}


@dataclass(frozen=True)
class JobCost:
    """One job of a plan with its price: ``bill`` (billable), ``saved`` or ``held``."""

    job: PlannedJob
    price: Price | Unpriced
    counts: str

    def to_json(self) -> dict[str, Any]:
        """``counts``, the ``render`` priced (model, mode, resolution, duration: defaults written
        out, so a CI gate need not know them) and the price."""
        r = self.price.render
        render = {"model": r.model, "mode": r.mode, "resolution": r.resolution, "duration": r.duration}
        return {"counts": self.counts, "render": render, **self.price.to_json()}


@dataclass(frozen=True)
class PlanCost:
    """What a plan costs in ``region``: the bill (its billable renders), what reuse and skips
    saved, and each job's price. ``saved_by`` is the saving per action (skip, reuse...)."""

    region: Region | None
    jobs: tuple[JobCost, ...]
    bill: Estimate
    saved: Estimate
    saved_by: Mapping[str, Estimate] = field(default_factory=dict)

    @property
    def currency(self) -> str | None:
        return self.region.currency if self.region else None

    @property
    def total(self) -> Decimal:
        """The priced part of the bill, in the region's currency (unpriced renders not counted)."""
        return self.bill.total()

    @property
    def unpriced(self) -> int:
        """Billable renders with no known price."""
        return self.bill.unpriced

    @property
    def waiting(self) -> int:
        """Billed chained shots that wait for their source's video: each is a new render only if
        the frame taken from it is new, so with any of them the bill is an upper bound."""
        return sum(1 for j in self.jobs if j.counts == "bill" and j.job.action is Action.WAIT)

    def quotes(self) -> dict[str, Price | Unpriced]:
        """The price of each render the plan creates, by render key (what the ledger keeps)."""
        return {j.job.job.key: j.price for j in self.jobs if j.counts == "bill"}

    def capped_amount(self, unpriced_as: Decimal | None) -> Decimal | None:
        """The bill with each unpriced render counted as ``unpriced_as``; None when some render is
        unpriced and nothing says how to count it."""
        if self.unpriced and unpriced_as is None:
            return None
        return self.total + self.unpriced * (unpriced_as or Decimal(0))

    def describe(self) -> str:
        """``1.12 USD``, ``1.12 USD + 2 unpriced renders``, ``2 unpriced renders``."""
        parts = []
        if self.bill.renders > self.unpriced or not self.unpriced:
            parts.append(money(self.total, self.currency))
        if self.unpriced:
            parts.append(f"{self.unpriced} unpriced render{'' if self.unpriced == 1 else 's'}")
        return " + ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The summary's ``cost`` object (amounts as decimal strings)."""
        return {
            "region": self.region.value if self.region else None,
            "currency": self.currency,
            "total": str(self.total),
            "unpriced": self.unpriced,
            "complete": self.bill.complete,
            # chained shots that wait are counted as new renders: the total is at most this
            "upper_bound": bool(self.waiting),
            "lines": [line.to_json() for line in self.bill.lines],
            "saved": {
                "total": str(self.saved.total()),
                "unpriced": self.saved.unpriced,
                "by_action": {a: {"renders": e.renders, "total": str(e.total()), "unpriced": e.unpriced} for a, e in self.saved_by.items()},
            },
        }

    def annotate(self, plan_json: dict[str, Any]) -> dict[str, Any]:
        """``plan_json`` (:meth:`Plan.to_json`, jobs in plan order) with each job's ``cost`` and
        the summary's ``cost``; returned for convenience (the dict is changed in place)."""
        for entry, job in zip(plan_json.get("jobs", []), self.jobs, strict=False):
            entry["cost"] = job.to_json()
        plan_json.setdefault("summary", {})["cost"] = self.to_json()
        return plan_json

    def lines(self) -> list[str]:
        """What ``plan`` prints about money, in place of its list of billable renders: that list
        with each line's price, the totals per model and resolution (when a line does not say
        them already), the total, and what reuse and skips saved."""
        out: list[str] = []
        groups: dict[tuple[str, str, str | None, int | None, int], list[Price | Unpriced]] = {}
        for j in self.jobs:
            if j.counts == "bill":
                r = j.price.render
                groups.setdefault((r.model, r.mode, r.resolution, r.duration, r.reference_images), []).append(j.price)
        if groups:
            count = sum(len(g) for g in groups.values())
            out.append(f"{count} billable render{'' if count == 1 else 's'}:")
            rows = []
            for (model, mode, resolution, duration, references), group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))):
                shape = "subject reference" if mode == "s2v" else f"{resolution} {duration}s"
                if references:  # MiniMax-H3 bills reference images past the fifth
                    shape += f" {references} reference image{'' if references == 1 else 's'}"
                rows.append((f"{len(group):>5} x {model} {mode} {shape}", _group_price(group, self.currency)))
            width = max(len(left) for left, _ in rows)
            out.extend(f"  {left:<{width}}  {right}" for left, right in rows)
            if len(self.bill.lines) < len(groups):  # some model and resolution spans several lines
                per = "; ".join(f"{line.model} {line.resolution}: {_line_amount(line)}" for line in self.bill.lines)
                out.append(f"  per model and resolution: {per}")
            where = f"{self.region.value} region" if self.region else "region unknown: say --region"
            out.append(f"Total: {'up to ' if self.waiting else ''}{self.describe()} ({where}; {_origins(self.jobs)})")
            if self.unpriced:
                out.append("  unpriced renders have no known price (not free): give one in a [prices] table (see `vidbatch prices --help`)")
        if self.saved.renders:
            by = ", ".join(f"{e.renders} {a}" for a, e in self.saved_by.items() if e.renders)
            unpriced = f" + {self.saved.unpriced} unpriced" if self.saved.unpriced else ""
            out.append(f"Saved against rendering everything from scratch: {money(self.saved.total(), self.currency)}{unpriced} ({by}).")
        return out


def _group_price(group: Sequence[Price | Unpriced], currency: str | None) -> str:
    """``0.28 USD``, ``0.84 USD (0.28 each)``, ``unpriced``, ``0.56 USD + 1 unpriced``."""
    priced = [p for p in group if isinstance(p, Price)]
    if not priced:
        return "unpriced"
    amount = sum((p.amount for p in priced), Decimal(0))
    units = {p.amount for p in priced}
    text = money(amount, currency)
    if len(priced) > 1 and len(units) == 1:
        text += f" ({money(units.pop())} each)"
    if len(priced) < len(group):
        text += f" + {len(group) - len(priced)} unpriced"
    return text


def _line_amount(line: EstimateLine) -> str:
    if line.unpriced == line.renders:
        return "unpriced"
    text = money(line.amount, line.currency)
    return f"{text} + {line.unpriced} unpriced" if line.unpriced else text


def _origins(jobs: Sequence[JobCost]) -> str:
    """Where the bill's prices come from, in a few words: ``shipped prices of 2026-12-02``,
    ``prices from shots.toml``; ``vidbatch prices`` tells the whole story."""
    seen: list[Origin] = []
    for j in jobs:
        if j.counts == "bill" and isinstance(j.price, Price):
            for charge in j.price.charges:
                if charge.row.origin not in seen:
                    seen.append(charge.row.origin)
    if not seen:
        return "no prices known"
    words = []
    for origin in sorted(seen, key=lambda o: -o.layer):
        if origin.layer is Layer.SHIPPED:
            text = "shipped prices" + (f" of {origin.taken.isoformat()}" if origin.taken else "")
        else:
            text = f"prices from {Path(origin.file).name}"
        if text not in words:
            words.append(text)
    return ", ".join(words)


def plan_cost(plan: Plan, region: Region | None, tables: Mapping[str, PriceTable] | PriceTable) -> PlanCost:
    """Price every job of ``plan`` in ``region``. ``tables``: one table for every job, or one per
    manifest path (:func:`manifest_tables`); a job of a manifest not in the mapping gets the
    shipped table under the config file's."""
    single = tables if isinstance(tables, PriceTable) else None
    fallback: list[PriceTable] = []

    def table_for(job: Any) -> PriceTable:
        if single is not None:
            return single
        assert isinstance(tables, Mapping)
        found = tables.get(str(job.manifest))
        if found is not None:
            return found
        if not fallback:
            fallback.append(load_table())
        return fallback[0]

    jobs: list[JobCost] = []
    for pj in plan.jobs:
        price = table_for(pj.job).price_of(render_of(pj.job), region)
        counts = "bill" if pj.billable else "saved" if pj.action in SAVING else "held"
        jobs.append(JobCost(pj, price, counts))

    def estimate(chosen: Iterable[JobCost]) -> Estimate:
        return Estimate.of((j.price for j in chosen), region)

    saved = [j for j in jobs if j.counts == "saved"]
    return PlanCost(
        region=region,
        jobs=tuple(jobs),
        bill=estimate(j for j in jobs if j.counts == "bill"),
        saved=estimate(saved),
        saved_by={a.value: estimate(j for j in saved if j.job.action is a) for a in SAVING},
    )


# --- caps and balance -------------------------------------------------------------------------


def parse_amount(text: str | Decimal | int | None, option: str = "--max-cost", region: Region | None = None) -> Decimal | None:
    """An amount the user typed (``2.50``, ``2.50 USD``); None for None. Raises UsageError, also
    when a currency is written and it is not ``region``'s (an amount is never converted)."""
    if text is None:
        return None
    if isinstance(text, Decimal):
        amount: Decimal | None = text
    else:
        words = str(text).split()
        amount = read_amount(words[0]) if len(words) in (1, 2) else None
        if amount is not None and len(words) == 2 and region is not None and words[1].upper() != region.currency:
            raise UsageError(
                f"{option} {text} is not in {region.currency}, the currency of the {region.value} region these renders are priced in; "
                f"give the amount in {region.currency} (or choose the region with --region)"
            )
    if amount is None or amount < 0:
        raise UsageError(f"{option} must be an amount such as 2.50 (in the region's currency), not {text!r}")
    return amount


def check_cost(cost: PlanCost, max_cost: Decimal | None, unpriced_as: Decimal | None = None) -> None:
    """Refuse (UsageError, exit 2) a plan whose bill exceeds ``max_cost``, or that has unpriced
    renders when nothing says how to count them. Nothing happens without ``max_cost``."""
    if max_cost is None:
        return
    currency = cost.currency or ""
    amount = cost.capped_amount(unpriced_as)
    if amount is None:
        raise UsageError(
            f"the plan has {cost.unpriced} render{'' if cost.unpriced == 1 else 's'} with no known price, so --max-cost "
            f"{money(max_cost, currency)} cannot be checked; give their price in a [prices] table (see `vidbatch prices --help`) "
            "or say what each counts as with --unpriced-as AMOUNT"
        )
    if amount > max_cost:
        counted = f" (counting {cost.unpriced} unpriced at {money(unpriced_as or Decimal(0))} each)" if cost.unpriced else ""
        waiting = (
            f" ({cost.waiting} chained shots that wait for a source's video counted as new renders: one whose "
            "source frame is unchanged costs nothing, which is known only once the video is in place)"
            if cost.waiting else ""
        )
        raise UsageError(
            f"the plan would cost {'up to ' if cost.waiting else ''}{money(amount, currency)}{counted}, more than --max-cost "
            f"{money(max_cost, currency)}{waiting}; nothing was sent. Check the plan (`vidbatch plan`), then raise --max-cost "
            "or render fewer jobs"
        )


def balance_warning(cost: PlanCost, balance: Balance | None) -> str | None:
    """What to tell the user when the plan's bill exceeds the account's available balance; None
    when it does not, or when the balance is unknown (a run never depends on it)."""
    over = shortfall(cost.bill, balance)
    if over is None or balance is None or balance.available is None:
        return None
    return (
        f"this plan costs about {money(cost.total, cost.currency)}, more than the account's available balance of "
        f"{money(balance.available, cost.currency)} (short by {money(over, cost.currency)}): MiniMax may refuse creates "
        "once it runs out (code 1008); top up first, or render fewer jobs"
    )


def confirm_question(cost: PlanCost, billable: int) -> str:
    """The question a terminal asks before a large plan: ``Create 12 paid renders for 3.36 USD?``."""
    renders = f"{billable} paid render{'' if billable == 1 else 's'}"
    return f"Create {renders} for {'up to ' if cost.waiting else ''}{cost.describe()}?"


@dataclass(frozen=True)
class Budget:
    """Money rules for a session: the region, the price tables (one per manifest path, or one for
    all), the cap (``--max-cost``, ``--unpriced-as``) and the balance read before the run."""

    region: Region | None
    tables: Mapping[str, PriceTable] | PriceTable
    max_cost: Decimal | None = None
    unpriced_as: Decimal | None = None
    balance: Balance | None = None
    #: the table under each manifest's ``[prices]`` (shipped, then the config file's): what
    #: :meth:`with_manifests` builds on when watch mode loads a manifest again
    base: PriceTable | None = None

    @classmethod
    def for_workspace(
        cls,
        manifests: Iterable[Any],
        host: str,
        *,
        region: Region | str | None = None,
        sim_region: Region | None = None,
        max_cost: str | Decimal | None = None,
        unpriced_as: str | Decimal | None = None,
        balance: Balance | None = None,
        config_file: Path | None = None,
    ) -> Budget:
        """The budget of a run against ``host``: the region the user named, else the host's (a
        loopback host plays ``sim_region``, the simulator's), else unknown (every render then
        is unpriced; a cap refuses unless ``unpriced_as`` says how to count them)."""
        from .prices import SIM_REGION

        chosen = Region(region) if region else region_for_host(host, loopback=sim_region or SIM_REGION)
        base = load_table(config_file=config_file)
        return cls(
            region=chosen,
            tables=manifest_tables(manifests, base),
            max_cost=parse_amount(max_cost, "--max-cost", chosen),
            unpriced_as=parse_amount(unpriced_as, "--unpriced-as", chosen),
            balance=balance,
            base=base,
        )

    def with_manifests(self, manifests: Iterable[Any]) -> Budget:
        """This budget with the tables of ``manifests`` as they are now (watch mode loads a
        manifest again after each edit, and its ``[prices]`` table may have changed); the
        tables of other manifests stay. A budget of one table for every job is kept as it is."""
        if isinstance(self.tables, PriceTable):
            return self
        fresh = manifest_tables(manifests, self.base if self.base is not None else load_table())
        return replace(self, tables={**self.tables, **fresh})

    def cost(self, plan: Plan) -> PlanCost:
        return plan_cost(plan, self.region, self.tables)

    def check(self, plan: Plan) -> PlanCost:
        """The plan's cost; raises UsageError when it is over the cap (see :func:`check_cost`)."""
        cost = self.cost(plan)
        check_cost(cost, self.max_cost, self.unpriced_as)
        return cost

    def quote(self, plan: Plan, store: Any) -> PlanCost:
        """Write the price of each billable render of ``plan`` into ``store`` (a
        :class:`~vidbatch.state.Store` open for writing), before any create: each create MiniMax
        accepts becomes a spend entry at this price (see :mod:`vidbatch.ledger`)."""
        from . import ledger

        cost = self.cost(plan)
        ledger.write_quotes(store, cost.quotes(), cost.region)
        return cost

    def admit(self, plan: Plan, store: Any) -> PlanCost:
        """:meth:`check` the plan (UsageError over the cap), then :meth:`quote` it."""
        self.check(plan)
        return self.quote(plan, store)

    def warning(self, cost: PlanCost) -> str | None:
        return balance_warning(cost, self.balance)
