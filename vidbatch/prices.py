"""What renders cost: MiniMax's prices as data, the user's own prices over them, and estimates.

Prices change, so they are data, not code: ``vidbatch/data/prices.toml`` ships MiniMax's
published pay-as-you-go prices with the date they were taken and their source. Three layers of
the same shape make the table in effect, the first that prices a render wins:

1. a manifest's ``[prices]`` table (rates for one project; the manifest loader hands the parsed
   mapping to :meth:`PriceTable.with_manifest`),
2. the user's config file's ``[prices]`` table (:func:`vidbatch.config.config_path`),
3. the shipped table.

So a manifest wins over the config file, which wins over what vidbatch ships. Row by row: a row
is keyed by (region, model, mode, resolution, duration, per); a row of a higher layer replaces
the row of a lower layer with the same key, and the other rows stay. A render is priced by the
highest layer that has a row matching it; within a layer by the most specific row (an exact
mode over ``"any"``, an exact resolution over ``"any"``, a price per video over a price per
second). Every row records where it came from (:class:`Origin`), and so does every price.

A render that no row prices is :class:`Unpriced`, never free: an :class:`Estimate` counts such
renders apart, and whoever caps spending decides how to count them. Models MiniMax publishes no
price for (T2V-01, I2V-01 and their -Director and -live kin, S2V-01) have no shipped row.

The region follows the host: ``api.minimax.io`` bills in USD (global), ``api.minimaxi.com`` in
CNY (mainland). The simulator, on a loopback host, plays :data:`SIM_REGION` unless told
otherwise. Money is :class:`decimal.Decimal` throughout; prices in files are decimal strings.

The shape of a ``[prices]`` table (the shipped file is one, at its top level)::

    taken = 2026-11-30            # optional: defaults for the rows below
    source = "our contract 2026-17"
    [[prices.global]]             # or [[prices.mainland]]
    model = "T2V-01"
    mode = "any"                  # optional: t2v, i2v, fl2v, s2v or "any" (the default)
    resolution = "720P"           # optional: "any" (the default) matches every resolution
    duration = 6                  # seconds; required with per = "video", refused otherwise
    per = "video"                 # "video" (the default), "second" or "reference_image"
    after = 5                     # with per = "reference_image": how many images are free
    price = "0.20"                # decimal string or number; 0 is allowed, negative is not
    currency = "USD"              # optional; must be the region's (USD global, CNY mainland)
    taken = 2026-11-30            # optional: a TOML date or "YYYY-MM-DD"
    source = "..."                # optional

This module never prints and makes no network call; it reads the shipped table and the config
file. :func:`parse_balance` reads the answer of MiniMax's ``/account/query_balance``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import enum
import functools
import logging
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from . import facts
from .errors import ConfigError, ManifestError, ManifestProblem, UsageError

log = logging.getLogger(__name__)

SHIPPED_FILE = Path(__file__).parent / "data" / "prices.toml"


# --- regions and currencies -------------------------------------------------------------------


class Region(str, enum.Enum):
    """Where an account lives, which decides the host it calls and the currency it pays in."""

    GLOBAL = "global"
    MAINLAND = "mainland"

    @property
    def currency(self) -> str:
        return CURRENCIES[self]


CURRENCIES: dict[Region, str] = {Region.GLOBAL: "USD", Region.MAINLAND: "CNY"}

#: The region each known host bills in. The two older hosts were the international
#: (api.minimaxi.chat) and the mainland (api.minimax.chat) hosts of MiniMax's earlier docs.
HOST_REGIONS: dict[str, Region] = {
    urlsplit(facts.HOST_GLOBAL).hostname or "": Region.GLOBAL,
    urlsplit(facts.HOST_MAINLAND).hostname or "": Region.MAINLAND,
    "api.minimaxi.chat": Region.GLOBAL,
    "api.minimax.chat": Region.MAINLAND,
}

#: The region the bundled simulator (any loopback host) plays unless the caller says otherwise.
SIM_REGION = Region.GLOBAL

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def region_for_host(host: str, *, loopback: Region = SIM_REGION) -> Region | None:
    """The region whose prices apply to calls to ``host`` (a URL or a bare host name); None for a
    host vidbatch cannot place (a proxy, say), so the caller asks the user for ``--region``.
    A loopback host is the simulator, which plays ``loopback``."""
    text = host.strip()
    name = (urlsplit(text if "//" in text else "//" + text).hostname or "").lower()
    if name in HOST_REGIONS:
        return HOST_REGIONS[name]
    if name in _LOOPBACK or name.startswith("127."):
        return loopback
    return None


# --- rows and where they came from ------------------------------------------------------------


class Per(str, enum.Enum):
    """What one price pays for."""

    VIDEO = "video"  # one render of ``duration`` seconds
    SECOND = "second"  # each second of output
    REFERENCE_IMAGE = "reference_image"  # each reference image past the first ``after``


class Layer(enum.IntEnum):
    """Where a row came from; a higher layer wins over a lower one."""

    SHIPPED = 0
    CONFIG = 1
    MANIFEST = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Origin:
    """Where a row came from: its layer, the file it was read from, when the price was taken and
    the source it cites (both optional for the user's own rows)."""

    layer: Layer
    file: str
    taken: dt.date | None = None
    source: str | None = None

    def describe(self) -> str:
        what = {Layer.SHIPPED: "shipped with vidbatch", Layer.CONFIG: "config file", Layer.MANIFEST: "manifest"}[self.layer]
        text = what if self.layer is Layer.SHIPPED else f"{what} {self.file}"
        if self.taken:
            text += f", taken {self.taken.isoformat()}"
        if self.source:
            text += f": {self.source}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer.label,
            "file": self.file,
            "taken": self.taken.isoformat() if self.taken else None,
            "source": self.source,
        }


ANY = "any"


@dataclass(frozen=True)
class PriceRow:
    """One price: what it applies to, how much, and where it came from."""

    region: Region
    model: str
    mode: str  # a facts.Mode value, or "any"
    resolution: str  # "768P", "2K", ... or "any"
    duration: int | None  # seconds, for per = video; None otherwise
    per: Per
    price: Decimal
    currency: str
    origin: Origin
    after: int = 0  # per = reference_image: this many images are free

    @property
    def key(self) -> tuple[Region, str, str, str, int | None, Per]:
        """Rows with the same key are the same price; a higher layer's replaces a lower one's."""
        return (self.region, self.model, self.mode, self.resolution, self.duration, self.per)

    def matches(self, render: Render) -> bool:
        if self.model != render.model or self.mode not in (ANY, render.mode):
            return False
        if self.resolution not in (ANY, render.resolution):
            return False
        if self.per is Per.VIDEO:
            return self.duration == render.duration
        if self.per is Per.SECOND:
            return render.duration is not None
        return True

    def specificity(self) -> tuple[bool, bool, bool]:
        return (self.mode != ANY, self.resolution != ANY, self.per is Per.VIDEO)

    def spec(self) -> str:
        """What the row prices, in words: ``768P, 6 s``; ``2K, per second``."""
        res = "any resolution" if self.resolution == ANY else self.resolution
        if self.per is Per.VIDEO:
            return f"{res}, {self.duration} s"
        if self.per is Per.SECOND:
            return f"{res}, per second"
        return f"{res}, each reference image past the {_ordinal(self.after)}" if self.after else f"{res}, each reference image"

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region.value,
            "model": self.model,
            "mode": self.mode,
            "resolution": self.resolution,
            "duration": self.duration,
            "per": self.per.value,
            "after": self.after if self.per is Per.REFERENCE_IMAGE else None,
            "price": str(self.price),
            "currency": self.currency,
            "origin": self.origin.to_json(),
        }


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def money(amount: Decimal, currency: str | None = None) -> str:
    """``0.28 USD``: at least two decimals, more only when the amount has them."""
    exponent = amount.as_tuple().exponent
    # formatted, not quantized: quantize raises past the context's 28 digits, and str() writes 1E-7
    shown = f"{amount:f}" if isinstance(exponent, int) and exponent < -2 else f"{amount:.2f}"
    return f"{shown} {currency}" if currency else shown


# --- reading [prices] tables ------------------------------------------------------------------

ROW_FIELDS = ("model", "mode", "resolution", "duration", "per", "after", "price", "currency", "taken", "source")
TABLE_KEYS = (*(r.value for r in Region), "taken", "source")
MODES = (ANY, *(m.value for m in facts.Mode))


@dataclass(frozen=True)
class PriceProblem:
    """One thing wrong in a ``[prices]`` table: the field (``global[2].price``) and why."""

    field: str
    message: str


def parse_prices(data: Mapping[str, Any], *, layer: Layer, file: str) -> tuple[list[PriceRow], list[PriceProblem]]:
    """The rows of one ``[prices]`` table, and every problem found in it (rows with a problem are
    left out). Pure: the callers turn problems into the error of their kind of file."""
    problems: list[PriceProblem] = []
    rows: list[PriceRow] = []
    if not isinstance(data, Mapping):
        return [], [PriceProblem("", f"must be a table, not {_kind(data)}")]
    for key in data:
        if key not in TABLE_KEYS:
            problems.append(PriceProblem(str(key), _unknown(str(key), TABLE_KEYS, "keys")))
    default_taken = _date(data.get("taken"), "taken", problems)
    default_source = _text(data.get("source"), "source", problems)
    for region in Region:
        entries = data.get(region.value)
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.append(PriceProblem(region.value, f"must be an array of rows ([[{region.value}]]), not {_kind(entries)}"))
            continue
        seen: dict[tuple[Any, ...], str] = {}
        for i, entry in enumerate(entries):
            where = f"{region.value}[{i}]"
            row = _parse_row(entry, where, region, Origin(layer, file, default_taken, default_source), problems)
            if row is None:
                continue
            if row.key in seen:
                problems.append(PriceProblem(where, f"prices the same renders as {seen[row.key]}; keep one of them"))
                continue
            seen[row.key] = where
            rows.append(row)
    return rows, problems


def _parse_row(entry: Any, where: str, region: Region, defaults: Origin, problems: list[PriceProblem]) -> PriceRow | None:
    if not isinstance(entry, Mapping):
        problems.append(PriceProblem(where, f"must be a table, not {_kind(entry)}"))
        return None
    before = len(problems)
    for key in entry:
        if key not in ROW_FIELDS:
            problems.append(PriceProblem(f"{where}.{key}", _unknown(str(key), ROW_FIELDS, "fields")))

    model = entry.get("model")
    if not isinstance(model, str) or not model.strip():
        problems.append(PriceProblem(f"{where}.model", "is required: the model's name, as in a manifest"))
    elif model.strip() not in facts.MODELS:  # a row no render can match: a typo would leave a price unused
        near = difflib.get_close_matches(model.strip(), list(facts.MODELS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; vidbatch renders {', '.join(facts.MODELS)}"
        problems.append(PriceProblem(f"{where}.model", f"unknown model {model!r}{hint}"))
    mode = entry.get("mode", ANY)
    if not isinstance(mode, str) or mode.lower() not in MODES:
        problems.append(PriceProblem(f"{where}.mode", f"must be one of {', '.join(MODES)}, not {mode!r}"))
    resolution = entry.get("resolution", ANY)
    if not isinstance(resolution, str) or not resolution.strip():
        problems.append(PriceProblem(f"{where}.resolution", f"must be a resolution such as 768P, or {ANY!r}"))
    per_text = entry.get("per", Per.VIDEO.value)
    per = Per(per_text) if per_text in [p.value for p in Per] else None
    if per is None:
        problems.append(PriceProblem(f"{where}.per", f"must be one of {', '.join(p.value for p in Per)}, not {per_text!r}"))

    duration = entry.get("duration")
    if per is Per.VIDEO and duration is None:
        problems.append(PriceProblem(f"{where}.duration", 'is required for a price per video (or say per = "second")'))
    elif duration is not None and per is not Per.VIDEO:
        problems.append(PriceProblem(f"{where}.duration", f"is only for a price per video; a price per {per_text} covers every duration"))
    elif duration is not None and (not _is_int(duration) or duration <= 0):
        problems.append(PriceProblem(f"{where}.duration", f"must be a whole number of seconds, not {duration!r}"))
    after = entry.get("after", 0)
    if "after" in entry and per is not Per.REFERENCE_IMAGE:
        problems.append(PriceProblem(f"{where}.after", 'is only for per = "reference_image"'))
    elif not _is_int(after) or after < 0:
        problems.append(PriceProblem(f"{where}.after", f"must be a whole number of images, not {after!r}"))

    price = _price(entry.get("price"), f"{where}.price", problems)
    currency = entry.get("currency", region.currency)
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES.values():
        known = ", ".join(f"{c} ({r.value})" for r, c in CURRENCIES.items())
        problems.append(PriceProblem(f"{where}.currency", f"unknown currency {currency!r}; MiniMax bills in {known}"))
    elif currency.upper() != region.currency:
        problems.append(PriceProblem(f"{where}.currency", f"{region.value} prices are in {region.currency}, not {currency.upper()}"))
    taken = _date(entry.get("taken"), f"{where}.taken", problems)
    source = _text(entry.get("source"), f"{where}.source", problems)

    if len(problems) > before or price is None or per is None:
        return None
    return PriceRow(
        region=region,
        model=str(model).strip(),
        mode=str(mode).lower(),
        resolution=ANY if str(resolution).strip().lower() == ANY else str(resolution).strip().upper(),
        duration=int(duration) if per is Per.VIDEO and duration is not None else None,
        per=per,
        price=price,
        currency=region.currency,
        origin=dataclasses.replace(defaults, taken=taken or defaults.taken, source=source or defaults.source),
        after=int(after) if per is Per.REFERENCE_IMAGE else 0,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _unknown(key: str, known: Iterable[str], what: str) -> str:
    known = list(known)
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown {what[:-1]}{hint}; {what} are {', '.join(known)}"


def _price(value: Any, where: str, problems: list[PriceProblem]) -> Decimal | None:
    if value is None:
        problems.append(PriceProblem(where, 'is required, as a decimal string such as "0.28"'))
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        problems.append(PriceProblem(where, f'must be a decimal string such as "0.28", not {_kind(value)}'))
        return None
    try:
        # str() first: 0.1 written as a TOML float is 0.1, not 0.1000000000000000055...
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        problems.append(PriceProblem(where, f'must be a decimal number such as "0.28", not {value!r}'))
        return None
    if not amount.is_finite():
        problems.append(PriceProblem(where, f"must be a finite amount, not {value!r}"))
        return None
    if amount < 0:
        problems.append(PriceProblem(where, f"must not be negative, not {value!r}"))
        return None
    return amount


def _date(value: Any, where: str, problems: list[PriceProblem]) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.append(PriceProblem(where, f"must be a date such as 2026-11-30, not {value!r}"))
    return None


def _text(value: Any, where: str, problems: list[PriceProblem]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    problems.append(PriceProblem(where, f"must be a string, not {_kind(value)}"))
    return None


@functools.cache
def shipped_rows() -> tuple[PriceRow, ...]:
    """The price table shipped with vidbatch."""
    try:
        data = tomllib.loads(SHIPPED_FILE.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"vidbatch's price table {SHIPPED_FILE} cannot be read ({e}); reinstall vidbatch") from None
    rows, problems = parse_prices(data, layer=Layer.SHIPPED, file=str(SHIPPED_FILE))
    if problems:
        raise ConfigError(f"vidbatch's price table {SHIPPED_FILE}: {problems[0].field}: {problems[0].message}; reinstall vidbatch")
    return tuple(rows)


def config_rows(path: Path | None = None) -> tuple[PriceRow, ...]:
    """The rows of the config file's ``[prices]`` table; none when there is no file or table.
    Raises ConfigError naming the file and the field of every problem."""
    from . import config

    path = path or config.config_path()
    data = config.read_config(path).get("prices")
    if data is None:
        return ()
    rows, problems = parse_prices(data, layer=Layer.CONFIG, file=str(path))
    if problems:
        raise ConfigError("\n".join(f"config file {path}: {_field('prices', p.field)}: {p.message}" for p in problems))
    return tuple(rows)


def manifest_rows(data: Mapping[str, Any], file: str | Path) -> tuple[PriceRow, ...]:
    """The rows of a manifest's ``[prices]`` table (``data``, as the loader parsed it). Raises
    ManifestError naming the file and the field of every problem."""
    rows, problems = parse_prices(data, layer=Layer.MANIFEST, file=str(file))
    if problems:
        raise ManifestError([ManifestProblem(str(file), p.message, field=_field("prices", p.field)) for p in problems])
    return tuple(rows)


def _field(table: str, field: str) -> str:
    return f"{table}.{field}" if field else table


# --- renders, prices, estimates ---------------------------------------------------------------


class RenderLike(Protocol):
    """What :meth:`Render.of` reads: :class:`vidbatch.rules.RequestSummary` has it."""

    model: str
    duration: int | None
    resolution: str | None

    @property
    def mode(self) -> Any: ...


@dataclass(frozen=True)
class Render:
    """The shape of one render that its price depends on."""

    model: str
    mode: str  # a facts.Mode value
    resolution: str | None
    duration: int | None
    reference_images: int = 0

    @classmethod
    def of(cls, value: Render | RenderLike | Mapping[str, Any]) -> Render:
        """A Render from a :class:`rules.RequestSummary` (or anything with ``model``, ``mode``,
        ``resolution``, ``duration`` and optionally ``reference_images``), or a mapping of those.
        A missing resolution or duration is the model's default (S2V-01 renders are 720P, 6 s)."""
        if isinstance(value, Render):
            if value.resolution and value.duration:
                return value
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping):
            get = value.get
        else:
            extra = getattr(value, "extra", None) or {}

            def get(name: str, default: Any = None) -> Any:
                return getattr(value, name, extra.get(name, default))

        mode = get("mode")
        mode_text = str(getattr(mode, "value", mode) or "").lower()
        resolution, duration = get("resolution"), get("duration")
        model = str(get("model") or "")
        spec = facts.MODELS[model].modes.get(facts.Mode(mode_text)) if model in facts.MODELS and mode_text in facts.Mode._value2member_map_ else None
        if spec is not None:
            resolution = resolution or spec.default_resolution
            duration = duration or spec.default_duration
        return cls(
            model=model,
            mode=mode_text,
            resolution=str(resolution).upper() if resolution else None,
            duration=int(duration) if duration else None,
            reference_images=int(get("reference_images", 0) or 0),
        )

    def spec(self) -> str:
        bits = [self.model, self.mode or "?", self.resolution or "?", f"{self.duration} s" if self.duration else "? s"]
        if self.reference_images:
            bits.append(f"{self.reference_images} reference images")
        return " ".join(bits)


@dataclass(frozen=True)
class Charge:
    """One part of a price: ``quantity`` units (1 video, N seconds, N extra images) of ``row``."""

    row: PriceRow
    quantity: int
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"per": self.row.per.value, "quantity": self.quantity, "unit_price": str(self.row.price), "amount": str(self.amount), "origin": self.row.origin.to_json()}


@dataclass(frozen=True)
class Price:
    """What one render costs, and which rows say so."""

    render: Render
    region: Region
    charges: tuple[Charge, ...]
    #: the row that prices reference images past its ``after`` for this render, charged or not
    #: (the ledger keeps it, to price what the API reports it billed: :mod:`vidbatch.ledger`)
    image_rate: PriceRow | None = None

    priced = True

    @property
    def amount(self) -> Decimal:
        return sum((c.amount for c in self.charges), Decimal(0))

    @property
    def currency(self) -> str:
        return self.region.currency

    def __str__(self) -> str:
        return money(self.amount, self.currency)

    def to_json(self) -> dict[str, Any]:
        return {"priced": True, "price": str(self.amount), "currency": self.currency, "charges": [c.to_json() for c in self.charges]}


@dataclass(frozen=True)
class Unpriced:
    """A render no row prices: its cost is unknown, not zero."""

    render: Render
    region: Region | None
    reason: str

    priced = False

    def __str__(self) -> str:
        return "unpriced"

    def to_json(self) -> dict[str, Any]:
        return {"priced": False, "price": None, "currency": None, "reason": self.reason}


@dataclass(frozen=True)
class EstimateLine:
    """Renders of one model at one resolution: how many, what the priced ones cost, how many
    have no price."""

    model: str
    resolution: str | None
    renders: int
    amount: Decimal
    currency: str | None
    unpriced: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "resolution": self.resolution,
            "renders": self.renders,
            "price": str(self.amount) if self.renders > self.unpriced else None,
            "currency": self.currency,
            "unpriced": self.unpriced,
        }


@dataclass(frozen=True)
class Estimate:
    """What a set of renders would cost: totals per currency (of the priced renders), lines per
    model and resolution, and how many renders have no price (not counted in any total)."""

    region: Region | None
    renders: int
    totals: Mapping[str, Decimal]
    lines: tuple[EstimateLine, ...]
    unpriced: int

    @classmethod
    def of(cls, prices: Iterable[Price | Unpriced], region: Region | None) -> Estimate:
        """The estimate of renders already priced (each perhaps by another table): lines per
        model and resolution in first-seen order, unpriced renders counted apart."""
        totals: dict[str, Decimal] = {}
        lines: dict[tuple[str, str | None], list[Any]] = {}
        count = unpriced = 0
        for price in prices:
            count += 1
            line = lines.setdefault((price.render.model, price.render.resolution), [0, Decimal(0), None, 0])
            line[0] += 1
            if isinstance(price, Price):
                totals[price.currency] = totals.get(price.currency, Decimal(0)) + price.amount
                line[1] += price.amount
                line[2] = price.currency
            else:
                unpriced += 1
                line[3] += 1
        return cls(
            region=region,
            renders=count,
            totals=totals,
            lines=tuple(EstimateLine(m, r, n, a, c, u) for (m, r), (n, a, c, u) in lines.items()),
            unpriced=unpriced,
        )

    @property
    def complete(self) -> bool:
        """Every render is priced, so the totals are the whole cost."""
        return self.unpriced == 0

    def total(self, currency: str | None = None) -> Decimal:
        """The priced total in ``currency`` (the region's by default); 0 when nothing is priced."""
        currency = currency or (self.region.currency if self.region else None)
        return self.totals.get(currency or "", Decimal(0))

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region.value if self.region else None,
            "renders": self.renders,
            "totals": {c: str(a) for c, a in self.totals.items()},
            "unpriced": self.unpriced,
            "lines": [line.to_json() for line in self.lines],
        }


@dataclass(frozen=True)
class TableRow:
    """A row in effect, as ``vidbatch prices`` shows it, with the lower layers' rows it replaces."""

    row: PriceRow
    replaces: tuple[PriceRow, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**self.row.to_json(), "replaces": [r.to_json() for r in self.replaces]}


@dataclass(frozen=True)
class PriceTable:
    """Every row of every layer. Build it with :func:`load_table` (shipped and config file) and
    :meth:`with_manifest`; price with :meth:`price_of` and :meth:`estimate`."""

    rows: tuple[PriceRow, ...]

    def with_manifest(self, data: Mapping[str, Any] | None, file: str | Path) -> PriceTable:
        """This table under a manifest's ``[prices]`` table (None or {}: unchanged)."""
        if not data:
            return self
        return PriceTable((*self.rows, *manifest_rows(data, file)))

    def in_effect(self, region: Region) -> list[TableRow]:
        """The rows of ``region`` in effect, each with the rows of lower layers it replaces (same
        key), ordered by model (the facts table's order first), then what they price."""
        winners: dict[tuple[Any, ...], PriceRow] = {}
        replaced: dict[tuple[Any, ...], list[PriceRow]] = {}
        for row in sorted((r for r in self.rows if r.region is region), key=lambda r: -r.origin.layer):
            if row.key in winners:
                replaced.setdefault(row.key, []).append(row)
            else:
                winners[row.key] = row
        order = {name: i for i, name in enumerate(facts.MODELS)}
        pers = list(Per)

        def sort_key(r: PriceRow) -> tuple[Any, ...]:
            return (order.get(r.model, len(order)), r.model, pers.index(r.per), r.mode, _resolution_rank(r.resolution), r.duration or 0)

        return [TableRow(r, tuple(replaced.get(r.key, ()))) for r in sorted(winners.values(), key=sort_key)]

    def _best(self, render: Render, region: Region, kinds: tuple[Per, ...]) -> PriceRow | None:
        candidates = [r for r in self.rows if r.region is region and r.per in kinds and r.matches(render)]
        if not candidates:
            return None
        return max(candidates, key=lambda r: (r.origin.layer, r.specificity()))

    def price_of(self, render: Render | RenderLike | Mapping[str, Any], region: Region | None) -> Price | Unpriced:
        """What one render costs in ``region``; Unpriced, with the reason, when no row says."""
        render = Render.of(render)
        if region is None:
            return Unpriced(render, None, "the region is unknown (a host other than MiniMax's), so no price applies; say --region global or mainland")
        base = self._best(render, region, (Per.VIDEO, Per.SECOND))
        if base is None:
            return Unpriced(
                render,
                region,
                f"no {region.value} price for {render.spec()}; give one in a [prices] table (see `vidbatch prices --help`)",
            )
        quantity = 1 if base.per is Per.VIDEO else int(render.duration or 0)
        charges = [Charge(base, quantity, base.price * quantity)]
        extra = self._best(render, region, (Per.REFERENCE_IMAGE,))
        if extra is not None and render.reference_images > extra.after:
            count = render.reference_images - extra.after
            charges.append(Charge(extra, count, extra.price * count))
        return Price(render, region, tuple(charges), extra)

    def estimate(self, renders: Iterable[Render | RenderLike | Mapping[str, Any]], region: Region | None) -> Estimate:
        """The cost of ``renders`` in ``region``: totals per currency, lines per model and
        resolution (in first-seen order), unpriced renders counted apart."""
        return Estimate.of((self.price_of(value, region) for value in renders), region)

    def unpriced_models(self, region: Region, models: Iterable[str] | None = None) -> list[str]:
        """The models (of ``models``, the facts table's by default) with no row at all in
        ``region``: every render of them is unpriced."""
        priced = {r.model for r in self.rows if r.region is region and r.per is not Per.REFERENCE_IMAGE}
        return [m for m in (facts.MODELS if models is None else models) if m not in priced]


def _resolution_rank(resolution: str) -> tuple[int, str]:
    """512P before 768P before 1080P before 2K; "any" last."""
    digits = "".join(ch for ch in resolution if ch.isdigit())
    lines = int(digits) * (1000 if resolution.endswith("K") else 1) if digits else 10**9
    return (lines, resolution)


def load_table(*, config_file: Path | None = None) -> PriceTable:
    """The shipped table under the config file's ``[prices]`` (``config_file``, else the usual
    config path). Add a manifest's with :meth:`PriceTable.with_manifest`."""
    return PriceTable((*shipped_rows(), *config_rows(config_file)))


# --- account balance --------------------------------------------------------------------------

#: MiniMax's balance call, a fact of the API (:data:`vidbatch.facts.PATH_BALANCE`), named here too
#: for the client, which asks this module for the balance.
PATH_BALANCE = facts.PATH_BALANCE


@dataclass(frozen=True)
class Balance:
    """The answer of ``GET /account/query_balance``, amounts as Decimal; None where the answer
    left a field out or wrote something that is not an amount."""

    available: Decimal | None
    cash: Decimal | None = None
    voucher: Decimal | None = None
    credit: Decimal | None = None
    owed: Decimal | None = None
    alert_switch: bool | None = None
    alert_threshold: Decimal | None = None
    currency: str | None = None  # the region's, when the caller knows it; the answer does not say

    def to_json(self) -> dict[str, Any]:
        def text(d: Decimal | None) -> str | None:
            return None if d is None else str(d)

        return {
            "available": text(self.available),
            "cash": text(self.cash),
            "voucher": text(self.voucher),
            "credit": text(self.credit),
            "owed": text(self.owed),
            "alert_switch": self.alert_switch,
            "alert_threshold": text(self.alert_threshold),
            "currency": self.currency,
        }


def read_amount(value: Any) -> Decimal | None:
    """An amount written as a string or number (``"12.50"``, ``"1,200.00"``); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def parse_balance(answer: Any, region: Region | None = None) -> Balance | None:
    """The balance in a ``query_balance`` answer; None when the answer carries none (not an
    object, a non-zero ``base_resp.status_code``, or no amount at all). Never raises: an account
    or host that does not answer must not break a run."""
    if not isinstance(answer, Mapping):
        return None
    base = answer.get("base_resp")
    if isinstance(base, Mapping) and base.get("status_code") not in (None, 0, "0"):
        log.debug("query_balance answered status_code %r", base.get("status_code"))
        return None
    switch = answer.get("balance_alert_switch")
    balance = Balance(
        available=read_amount(answer.get("available_amount")),
        cash=read_amount(answer.get("cash_balance")),
        voucher=read_amount(answer.get("voucher_balance")),
        credit=read_amount(answer.get("credit_balance")),
        owed=read_amount(answer.get("owed_amount")),
        alert_switch=switch if isinstance(switch, bool) else None,
        alert_threshold=read_amount(answer.get("balance_alert_threshold")),
        currency=region.currency if region else None,
    )
    amounts = (balance.available, balance.cash, balance.voucher, balance.credit, balance.owed)
    # Without available_amount the other fields are kept for display, but nothing is derived from
    # them: how MiniMax nets vouchers, credit and debt is not documented.
    return None if all(a is None for a in amounts) else balance


def shortfall(estimate: Estimate, balance: Balance | None) -> Decimal | None:
    """How much the estimate's priced total exceeds the available balance, in the region's
    currency; None when it does not, or when either cannot be compared."""
    if balance is None or balance.available is None or estimate.region is None:
        return None
    if balance.currency not in (None, estimate.region.currency):
        return None
    over = estimate.total() - balance.available
    return over if over > 0 else None


def choose_region(region: Region | str | None, host: str) -> Region:
    """The region whose prices apply: ``region`` when the user named one, else the host's.
    Raises UsageError for a host vidbatch cannot place."""
    if region:
        return Region(region)
    found = region_for_host(host)
    if found is None:
        raise UsageError(
            f"cannot tell which region's prices apply to host {host}: "
            f"MiniMax bills {facts.HOST_GLOBAL} in USD and {facts.HOST_MAINLAND} in CNY; "
            "say --region global or --region mainland"
        )
    return found
