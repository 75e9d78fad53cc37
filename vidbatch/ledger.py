"""The spend ledger: every create MiniMax accepted, at the price it had, read from the state.

How entries are written (migration ``m005_spend_ledger`` in :mod:`vidbatch.state`):

- Before a plan's first create, :func:`write_quotes` keeps the price of each billable render in
  ``price_quotes`` (one row per render key: amount, currency, region, when, from which row).
- The runner records ``submitted`` (the task id arrived) and ``uncertain`` (the answer was lost,
  or a crash cut the create off) in the ``events`` history. A trigger on ``events`` turns each such
  event into a ``spend`` row carrying the render's shape and its quoted price, *in the transaction
  that records the event*. So the entry is durable the moment the task id is; a crash leaves
  either both or neither; and one event is one entry (``event_id`` is unique), so nothing is
  counted twice. The runner knows nothing of money.

Why a trigger rather than a callback on the runner's events: a callback runs after the state's
transaction committed, so a crash between the two would lose an accepted create's entry, and
every entry point (run, watch, a library user) would have to remember to install it.

Reading (``vidbatch spend``, or plain SQLite)::

    spend(id, event_id, at, key, task_id, kind, name, manifest, model, mode, resolution,
          duration, amount, currency, region, priced_at, price_origin, billed_amount)

``kind`` is ``accepted`` (MiniMax has the task: money spent, as far as vidbatch can know) or
``possible`` (the create's answer was lost: MiniMax may or may not have it); ``amount`` is the
estimate, a decimal string, NULL when no price was known; ``billed_amount`` what the API reported
it billed, as money, where it reports it (Video Generation V2's ``usage``, kept as JSON in
``usage``: seconds and images, which :func:`record_usage` prices with the rates the quote kept in
``price_origin``, so by the table in effect for that entry; NULL when that table had no price);
``at`` is Unix time. The view ``spend_by_day`` sums it by UTC
day, manifest, model, resolution, currency and kind::

    sqlite3 .vidbatch/state.db "select * from spend_by_day"

Every sum says which of its amounts were billed and which are estimates (:class:`Tally`).

Reuse costs nothing because it creates nothing: no ``submitted`` event, no entry. A create whose
render later failed stays an entry (whether MiniMax charges for failed pay-as-you-go renders is
not documented); :class:`Ledger` shows what such entries came to apart.

An entry written with no quote (a create made by a vidbatch that quoted nothing) is priced when
read, with the table in effect then, and says so (``priced_when_read``).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .prices import Per, Price, PriceRow, PriceTable, Region, Render, Unpriced, money
from .state import Store, now, state_error

log = logging.getLogger(__name__)


class SpendKind(str, enum.Enum):
    ACCEPTED = "accepted"  # MiniMax accepted the create (a task id came back)
    POSSIBLE = "possible"  # the create's answer was lost: it may have been accepted

    def __str__(self) -> str:
        return self.value


def write_quotes(store: Store, quotes: Mapping[str, Price | Unpriced], region: Region | None) -> int:
    """Keep the price of each render about to be created (render key -> its price in ``region``)
    in the state, before any create. An unpriced render is kept as such, so its entries say
    "unpriced", not "free". Returns how many renders were quoted."""
    stamp = now()
    rows = [
        {
            "key": key,
            "amount": str(price.amount) if isinstance(price, Price) else None,
            "currency": price.currency if isinstance(price, Price) else (region.currency if region else None),
            "region": region.value if region else None,
            "quoted_at": stamp,
            "origin": json.dumps(rates_of(price)) if isinstance(price, Price) else None,
        }
        for key, price in quotes.items()
    ]
    if not rows:
        return 0
    try:
        with store.transaction():
            store.db.table("price_quotes").upsert_all(rows, pk="key")
    except sqlite3.Error as e:
        raise state_error(store.path, e, busy_timeout=store.busy_timeout) from e
    return len(rows)


def rates_of(price: Price) -> list[dict[str, Any]]:
    """What a quote keeps of a price (``price_quotes.origin``, copied to ``spend.price_origin``):
    one item per row that priced it, the row's origin (layer, file, taken, source) with its rate
    (``per``, ``unit_price``, ``quantity``; ``after`` for reference images). The row pricing
    reference images is kept even when this render had none to charge, so that what the API
    reports it billed (:func:`billed_amount`) is priced by the same table as the estimate."""

    def item(row: PriceRow, quantity: int) -> dict[str, Any]:
        rate: dict[str, Any] = {"per": row.per.value, "unit_price": str(row.price), "quantity": quantity}
        if row.per is Per.REFERENCE_IMAGE:
            rate["after"] = row.after
        return {**row.origin.to_json(), **rate}

    items = [item(c.row, c.quantity) for c in price.charges]
    if price.image_rate is not None and all(c.row.per is not Per.REFERENCE_IMAGE for c in price.charges):
        items.append(item(price.image_rate, 0))
    return items


def billed_amount(usage: Mapping[str, Any], rates: Any, duration: int | None = None) -> Decimal | None:
    """What MiniMax billed for a task, as money: its ``usage`` (Video Generation V2: seconds and
    images) priced with ``rates`` (:func:`rates_of`, the table in effect when the create was
    quoted). Usage of all zeros (a queued task cancelled, a failed one) is ``0``: nothing was
    billed. None when the rates cannot price it (no quote, a quote of an unpriced render, a
    price per video of another duration than the one billed): unpriced, never free.

    A price per second is charged for each ``output_seconds``; a price per video when the
    output seconds are its ``duration``; a price per reference image for each of
    ``input_image_count`` past its ``after``."""
    if usage and not any(usage.values()):
        return Decimal(0)
    if not isinstance(rates, list):
        return None
    by_per: dict[str, dict[str, Any]] = {}
    for r in rates:
        if isinstance(r, dict) and isinstance(r.get("per"), str) and r["per"] not in by_per:
            by_per[r["per"]] = r
    output = usage.get("output_seconds")
    base = by_per.get(Per.SECOND.value) or by_per.get(Per.VIDEO.value)
    unit = _decimal(base.get("unit_price")) if base else None
    if base is None or unit is None or not isinstance(output, int):
        return None
    if base["per"] == Per.SECOND.value:
        amount = unit * output
    elif duration is not None and output == duration:
        amount = unit
    else:
        return None
    images = by_per.get(Per.REFERENCE_IMAGE.value)
    count = usage.get("input_image_count") or 0
    if images is not None and isinstance(count, int):
        image_unit, after = _decimal(images.get("unit_price")), images.get("after", 0)
        if image_unit is None or not isinstance(after, int):
            return None
        amount += image_unit * max(0, count - after)
    return amount


@dataclass(frozen=True)
class SpendEntry:
    """One create that was (``accepted``) or may have been (``possible``) paid for."""

    id: int
    at: float
    key: str
    task_id: str | None
    kind: SpendKind
    name: str | None
    manifest: str | None
    model: str | None
    resolution: str | None
    duration: int | None
    amount: Decimal | None  # the estimate (or the billed figure); None: unpriced
    currency: str | None
    region: str | None
    billed: bool = False  # amount is what the API reported
    priced_when_read: bool = False  # no quote was kept: priced with the table in effect now
    outcome: str | None = None  # the render's state now (failed, done...)

    @property
    def day(self) -> str:
        """The UTC day of the create, ``YYYY-MM-DD``."""
        return dt.datetime.fromtimestamp(self.at, dt.UTC).date().isoformat()

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "day": self.day,
            "key": self.key,
            "task_id": self.task_id,
            "kind": self.kind.value,
            "name": self.name,
            "manifest": self.manifest,
            "model": self.model,
            "resolution": self.resolution,
            "duration": self.duration,
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency,
            "region": self.region,
            "billed": self.billed,
            "priced_when_read": self.priced_when_read,
            "outcome": self.outcome,
        }


def _decimal(text: Any) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except ArithmeticError:
        return None


def _resolved(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def read_entries(
    store: Store,
    *,
    manifests: Iterable[str | Path] | None = None,
    since: float | None = None,
    table: PriceTable | None = None,
    region: Region | None = None,
) -> list[SpendEntry]:
    """The spend entries of ``store``, oldest first: of ``manifests`` (their paths; None: all),
    at or after ``since`` (Unix time). An entry written with no quote is priced with ``table`` in ``region``
    when both are given (``priced_when_read``), else left unpriced."""
    where: list[str] = ["1=1"]
    args: list[Any] = []
    if since is not None:
        where.append("s.at >= ?")
        args.append(since)
    sql = (
        "select s.*, r.state as outcome from spend s left join renders r on r.key = s.key "
        f"where {' and '.join(where)} order by s.at, s.id"
    )
    try:  # plain sqlite3: reading the ledger imports no sqlite-utils
        if store.conn.execute("select 1 from sqlite_master where type = 'table' and name = 'spend'").fetchone() is None:
            return []
        cursor = store.conn.execute(sql, args)
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row)) for row in cursor]
    except sqlite3.Error as e:
        raise state_error(store.path, e, busy_timeout=store.busy_timeout) from e
    if manifests is not None:
        wanted = {_resolved(m) for m in manifests}
        resolved = {m: _resolved(m) for m in {r["manifest"] for r in rows if r["manifest"] is not None}}  # once per manifest
        rows = [r for r in rows if r["manifest"] is not None and resolved[r["manifest"]] in wanted]
    out = []
    for r in rows:
        amount, currency, when_read = _decimal(r["billed_amount"] or r["amount"]), r["currency"], False
        if amount is None and r["priced_at"] is None and table is not None and region is not None and r["model"]:
            price = table.price_of(Render.of({"model": r["model"], "mode": r["mode"], "resolution": r["resolution"], "duration": r["duration"]}), region)
            if isinstance(price, Price):
                amount, currency, when_read = price.amount, price.currency, True
        out.append(
            SpendEntry(
                id=r["id"],
                at=r["at"],
                key=r["key"],
                task_id=r["task_id"],
                kind=SpendKind(r["kind"]),
                name=r["name"],
                manifest=r["manifest"],
                model=r["model"],
                resolution=r["resolution"],
                duration=r["duration"],
                amount=amount,
                currency=currency or (region.currency if region and amount is not None else None),
                region=r["region"] or (region.value if when_read and region else None),
                billed=r["billed_amount"] is not None,
                priced_when_read=when_read,
                outcome=r["outcome"],
            )
        )
    return out


@dataclass(frozen=True)
class Tally:
    """Entries of one kind added up: how many, the priced total per currency, how many unpriced;
    and of them, those whose amount is what the API reported it billed (``billed_creates``,
    ``billed``: per currency), the others being estimates from the price table."""

    creates: int = 0
    totals: Mapping[str, Decimal] = field(default_factory=dict)
    unpriced: int = 0
    billed_creates: int = 0
    billed: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Iterable[SpendEntry]) -> Tally:
        totals: dict[str, Decimal] = {}
        billed: dict[str, Decimal] = {}
        creates = unpriced = billed_creates = 0
        for e in entries:
            creates += 1
            if e.amount is None:
                unpriced += 1
                continue
            currency = e.currency or "?"
            totals[currency] = totals.get(currency, Decimal(0)) + e.amount
            if e.billed:
                billed_creates += 1
                billed[currency] = billed.get(currency, Decimal(0)) + e.amount
        return cls(creates, totals, unpriced, billed_creates, billed)

    @property
    def estimated(self) -> Mapping[str, Decimal]:
        """The priced total per currency of the entries that are estimates (not billed)."""
        return {c: a - self.billed.get(c, Decimal(0)) for c, a in self.totals.items() if self.billed.get(c) is None or a != self.billed[c]}

    @staticmethod
    def _amounts(totals: Mapping[str, Decimal], unpriced: int = 0) -> str:
        parts = [money(a, c) for c, a in sorted(totals.items())]
        if unpriced:
            parts.append(f"{unpriced} unpriced")
        return " + ".join(parts) if parts else money(Decimal(0))

    def describe(self) -> str:
        """``1.12 USD``, ``1.12 USD + 2 unpriced``, ``nothing``: estimates from the price table;
        with amounts the API reported it billed, says which: ``1.04 USD billed``, ``1.32 USD
        (1.04 USD billed, 0.28 USD estimated)``."""
        if not self.billed_creates:
            return self._amounts(self.totals, self.unpriced)
        if self.billed_creates == self.creates:
            return f"{self._amounts(self.billed)} billed"
        return f"{self._amounts(self.totals, self.unpriced)} ({self._amounts(self.billed)} billed, {self._amounts(self.estimated, self.unpriced)} estimated)"

    def to_json(self) -> dict[str, Any]:
        return {"creates": self.creates, "totals": {c: str(a) for c, a in sorted(self.totals.items())}, "unpriced": self.unpriced}

    def split_json(self) -> dict[str, Any]:
        """The same entries as ``billed`` (amounts the API reported) and ``estimated`` (priced
        by the table; the unpriced are estimates that have no price)."""
        return {
            "billed": {"creates": self.billed_creates, "totals": {c: str(a) for c, a in sorted(self.billed.items())}},
            "estimated": {
                "creates": self.creates - self.billed_creates,
                "totals": {c: str(a) for c, a in sorted(self.estimated.items())},
                "unpriced": self.unpriced,
            },
        }


@dataclass(frozen=True)
class Ledger:
    """Spend entries and their sums: ``spent`` (accepted creates), ``possible`` (uncertain ones,
    apart), ``failed`` (accepted creates whose render failed: part of ``spent``), and the groups
    by day, model and manifest."""

    entries: tuple[SpendEntry, ...]

    def _of(self, kind: SpendKind) -> list[SpendEntry]:
        return [e for e in self.entries if e.kind is kind]

    @property
    def spent(self) -> Tally:
        return Tally.of(self._of(SpendKind.ACCEPTED))

    @property
    def possible(self) -> Tally:
        return Tally.of(self._of(SpendKind.POSSIBLE))

    @property
    def failed(self) -> Tally:
        return Tally.of(e for e in self._of(SpendKind.ACCEPTED) if e.outcome == "failed")

    def by_key(self) -> dict[str, Tally]:
        """What each render cost (its accepted creates), by render key: the cost of a job's
        render for ``status`` and the report."""
        keys: dict[str, list[SpendEntry]] = {}
        for e in self._of(SpendKind.ACCEPTED):
            keys.setdefault(e.key, []).append(e)
        return {k: Tally.of(v) for k, v in keys.items()}

    def groups(self) -> list[tuple[tuple[str, str, str], Tally, Tally]]:
        """((day, model, manifest), spent, possible) in day order."""
        keys: dict[tuple[str, str, str], list[SpendEntry]] = {}
        for e in self.entries:
            keys.setdefault((e.day, e.model or "?", e.manifest or "?"), []).append(e)
        return [
            (k, Tally.of(x for x in v if x.kind is SpendKind.ACCEPTED), Tally.of(x for x in v if x.kind is SpendKind.POSSIBLE))
            for k, v in sorted(keys.items())
        ]

    def totals_json(self) -> dict[str, Any]:
        """The sums without the entries: ``spent``, of it ``billed`` (what the API reported) and
        ``estimated`` (priced by the table), ``possible`` and ``failed`` (a ``finish`` event,
        ``status --json``)."""
        return {"spent": self.spent.to_json(), **self.spent.split_json(), "possible": self.possible.to_json(), "failed": self.failed.to_json()}

    def to_json(self) -> dict[str, Any]:
        return {
            "spent": self.spent.to_json(),
            **self.spent.split_json(),
            "possible": self.possible.to_json(),
            "failed": self.failed.to_json(),
            "groups": [
                {"day": d, "model": m, "manifest": mf, "spent": s.to_json(), "possible": p.to_json()}
                for (d, m, mf), s, p in self.groups()
            ],
            "entries": [e.to_json() for e in self.entries],
        }

    def lines(self, shown: Any = str) -> list[str]:
        """The ledger as text: one line per day, model and manifest, then the totals.
        ``shown`` turns a manifest path into what the user reads (relative, say)."""
        if not self.entries:
            return ["No spend recorded: no create was accepted here yet."]
        rows = [("day", "model", "manifest", "creates", "spent", "possible")]
        for (day, model, manifest), s, p in self.groups():
            rows.append((day, model, shown(manifest) if manifest != "?" else "?", str(s.creates), s.describe() if s.creates else "", f"{p.describe()} ({p.creates})" if p.creates else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        out = ["  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(r)).rstrip() for r in rows]
        out.append("")
        return out + self.totals_lines()

    def totals_lines(self) -> list[str]:
        """What was spent, what of it went on renders that then failed, and what may have been
        spent (uncertain creates), as text (``spend``, ``status``); nothing without entries."""
        if not self.entries:
            return []
        spent = f"Spent: {self.spent.describe()} ({self.spent.creates} accepted create{'' if self.spent.creates == 1 else 's'})"
        if self.failed.creates:
            spent += f", of which renders that then failed: {self.failed.describe()} ({self.failed.creates}; MiniMax may not charge them)"
        out = [spent]
        if self.possible.creates:
            out.append(f"Possibly spent: {self.possible.describe()} ({self.possible.creates} uncertain create{'' if self.possible.creates == 1 else 's'}: the answer was lost, MiniMax may have the task)")
        if any(e.priced_when_read for e in self.entries):
            out.append("Some entries had no price kept when created: priced with today's table.")
        return out


def ledger(store: Store, **filters: Any) -> Ledger:
    """:func:`read_entries` as a :class:`Ledger`."""
    return Ledger(tuple(read_entries(store, **filters)))


@dataclass(frozen=True)
class RunSpend:
    """What one run spent (the creates since it started) beside what its manifests have spent
    so far, every run included: the run summary, the ``finish`` event and ``status``."""

    this_run: Ledger
    so_far: Ledger

    def to_json(self) -> dict[str, Any]:
        return {"this_run": self.this_run.totals_json(), "so_far": self.so_far.totals_json()}

    def line(self, what: str = "this run") -> str | None:
        """The run summary's line (:func:`run_spend_line`); None when the run created nothing."""
        return run_spend_line(self.this_run, self.so_far, what) if self.this_run.entries else None


def run_spend(store: Store, *, since: float, manifests: Iterable[str | Path] | None = None) -> RunSpend:
    """The spend of the run that started at ``since`` (Unix time) and of ``manifests`` so far
    (None: every manifest of the state). A state folder is held by one run at a time, so every
    entry since the run started is the run's."""
    so_far = ledger(store, manifests=manifests)
    return RunSpend(Ledger(tuple(e for e in so_far.entries if e.at >= since)), so_far)


def run_spend_line(this_run: Ledger, so_far: Ledger | None = None, what: str = "this run") -> str:
    """The run summary's spend line: ``spent about 1.12 USD in this run (4 creates accepted, 0.28
    USD of it on renders that then failed); possibly 0.28 USD more (1 uncertain); 3.36 USD so far
    for these manifests``."""
    s, p = this_run.spent, this_run.possible
    failed = this_run.failed
    on_failed = f", {failed.describe()} of it on renders that then failed" if failed.creates else ""
    about = "" if s.creates and s.billed_creates == s.creates else " about"  # every amount billed: no estimate in it
    text = f"spent{about} {s.describe()} in {what} ({s.creates} create{'' if s.creates == 1 else 's'} accepted{on_failed})"
    if p.creates:
        text += f"; possibly {p.describe()} more ({p.creates} uncertain)"
    if so_far is not None and so_far.entries:
        text += f"; {so_far.spent.describe()} so far for these manifests"
    return text


def record_usage(store: Store, task_id: str, usage: Mapping[str, int]) -> int:
    """Keep what MiniMax says it billed for ``task_id`` (V2's ``usage``: seconds and images) on
    its spend entries, and the money it comes to (``billed_amount``: :func:`billed_amount` with the
    rates of each entry's quote, the table in effect when the create was quoted; left empty when
    they cannot price it, so the entry stays the estimate, or unpriced). Returns how many entries
    carry it."""
    try:
        with store.transaction():
            rows = store.conn.execute("SELECT id, price_origin, duration FROM spend WHERE task_id = ?", [task_id]).fetchall()
            for entry_id, origin, duration in rows:
                try:
                    rates = json.loads(origin) if origin else None
                except ValueError:
                    rates = None
                amount = billed_amount(usage, rates, duration)
                store.conn.execute(
                    "UPDATE spend SET usage = ?, billed_amount = ? WHERE id = ?",
                    [json.dumps(dict(usage), sort_keys=True), None if amount is None else str(amount), entry_id],
                )
    except sqlite3.Error as e:
        raise state_error(store.path, e, busy_timeout=store.busy_timeout) from e
    return len(rows)
