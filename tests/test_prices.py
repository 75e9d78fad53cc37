"""Prices as data: the shipped table against the contract, the user's overrides over it, estimates
in Decimal with unpriced renders apart, the `vidbatch prices` command, and the balance answer."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from vidbatch import config, facts, rules
from vidbatch import prices as p
from vidbatch.errors import ConfigError, ManifestError

from .helpers import cli, cli_subprocess

# The contract's "Prices" table (shared/minimax-api.md), written out again here on purpose: the
# shipped data file is checked against it, not against itself. (model, resolution, seconds) ->
# (global USD, mainland CNY).
CONTRACT_PER_VIDEO = {
    ("MiniMax-Hailuo-2.3-Fast", "768P", 6): ("0.19", "1.35"),
    ("MiniMax-Hailuo-2.3-Fast", "768P", 10): ("0.32", "2.25"),
    ("MiniMax-Hailuo-2.3-Fast", "1080P", 6): ("0.33", "2.31"),
    ("MiniMax-Hailuo-2.3", "768P", 6): ("0.28", "2.00"),
    ("MiniMax-Hailuo-2.3", "768P", 10): ("0.56", "4.00"),
    ("MiniMax-Hailuo-2.3", "1080P", 6): ("0.49", "3.50"),
    ("MiniMax-Hailuo-02", "768P", 6): ("0.28", "2.00"),
    ("MiniMax-Hailuo-02", "768P", 10): ("0.56", "4.00"),
    ("MiniMax-Hailuo-02", "1080P", 6): ("0.49", "3.50"),
    ("MiniMax-Hailuo-02", "512P", 6): ("0.10", "0.60"),
    ("MiniMax-Hailuo-02", "512P", 10): ("0.15", "1.00"),
}
#: (model, resolution) -> price per output second.
CONTRACT_PER_SECOND = {("MiniMax-H3", "768P"): ("0.08", "0.50"), ("MiniMax-H3", "2K"): ("0.13", "0.80")}
CONTRACT_REFERENCE_IMAGE = ("0.04", "0.20")  # H3: each reference image past the 5th
#: Not on the price pages: a render of them is unpriced until the user gives a price.
UNPUBLISHED = {"T2V-01", "T2V-01-Director", "I2V-01", "I2V-01-Director", "I2V-01-live", "S2V-01"}

HOSTS = {facts.HOST_GLOBAL: (0, "USD"), facts.HOST_MAINLAND: (1, "CNY")}


def every_render_the_facts_allow() -> list[tuple[str, facts.Mode, str, int]]:
    out = []
    for name, model in facts.MODELS.items():
        for mode, spec in model.modes.items():
            if not spec.durations:  # S2V-01: no duration or resolution fields; seen as 720P, 6 s
                out.append((name, mode, spec.default_resolution, spec.default_duration))
            for seconds, resolutions in spec.durations.items():
                out.extend((name, mode, res, seconds) for res in resolutions)
    return out


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Write the user's config file (0600, at $VIDBATCH_CONFIG) and return its path."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("VIDBATCH_CONFIG", str(path))

    def write(text: str) -> Path:
        return write_config(path, text)

    return write


# --- the shipped table against the contract ---------------------------------------------------


@pytest.mark.parametrize("host", list(HOSTS))
@pytest.mark.parametrize("model,mode,resolution,duration", every_render_the_facts_allow())
def test_every_render_the_facts_allow_is_priced_as_the_contract_says_or_unpriced(model, mode, resolution, duration, host):
    column, currency = HOSTS[host]
    region = p.region_for_host(host)
    summary = rules.summarize(_request(model, mode, resolution, duration))
    price = p.load_table().price_of(summary, region)
    if model in UNPUBLISHED:
        assert isinstance(price, p.Unpriced) and not price.priced
        assert price.to_json()["price"] is None and "no " in price.reason and model in price.reason
        return
    if (model, resolution, duration) in CONTRACT_PER_VIDEO:
        expected = Decimal(CONTRACT_PER_VIDEO[model, resolution, duration][column])
    elif (model, resolution) in CONTRACT_PER_SECOND:
        expected = Decimal(CONTRACT_PER_SECOND[model, resolution][column]) * duration
    else:
        pytest.fail(f"facts allow {model} {resolution} {duration} s, which the contract neither prices nor lists as unpublished")
    assert isinstance(price, p.Price)
    assert (price.amount, price.currency) == (expected, currency)
    assert price.charges[0].row.origin.layer is p.Layer.SHIPPED


#: The media fields (flat form) of a V2 request in each mode, and a ratio for text only.
V2_MEDIA: dict[facts.Mode, dict[str, object]] = {
    facts.Mode.T2V: {"ratio": "16:9"},
    facts.Mode.I2V: {"first_frame_image": "https://example.com/a.png"},
    facts.Mode.FL2V: {"first_frame_image": "https://example.com/a.png", "last_frame_image": "https://example.com/b.png"},
    facts.Mode.LF2V: {"last_frame_image": "https://example.com/b.png"},
    facts.Mode.R2V: {"reference_images": ["https://example.com/a.png"]},
}


def _request(model: str, mode: facts.Mode, resolution: str, duration: int) -> dict[str, object]:
    """A request the facts accept for this shape (so summarize() sees what plan sees)."""
    image = "https://example.com/a.png"
    request: dict[str, object] = {"model": model, "prompt": "a pond"}
    if facts.MODELS[model].api is facts.Api.V2:
        request.update(duration=duration, resolution=resolution, **V2_MEDIA[mode])
        assert rules.check_v2_request(rules.v2_body(request)) == []
        return request
    if mode is facts.Mode.S2V:
        request["subject_reference"] = [{"type": "character", "image": [image]}]
    else:
        request.update(duration=duration, resolution=resolution)
        if mode in (facts.Mode.I2V, facts.Mode.FL2V):
            request["first_frame_image"] = image
        if mode is facts.Mode.FL2V:
            request["last_frame_image"] = image
    assert rules.check_request(request) == []
    return request


def test_the_shipped_table_holds_exactly_the_contract_with_date_and_source():
    rows = p.shipped_rows()
    per_video = {(r.model, r.resolution, r.duration, r.region): r.price for r in rows if r.per is p.Per.VIDEO}
    expected = {
        (model, res, secs, region): Decimal(prices[i])
        for (model, res, secs), prices in CONTRACT_PER_VIDEO.items()
        for i, region in enumerate(p.Region)
    }
    assert per_video == expected
    per_second = {(r.model, r.resolution, r.region): r.price for r in rows if r.per is p.Per.SECOND}
    assert per_second == {(m, res, region): Decimal(v[i]) for (m, res), v in CONTRACT_PER_SECOND.items() for i, region in enumerate(p.Region)}
    extras = [r for r in rows if r.per is p.Per.REFERENCE_IMAGE]
    assert [(r.model, r.after, r.price, r.region) for r in extras] == [
        ("MiniMax-H3", 5, Decimal(CONTRACT_REFERENCE_IMAGE[i]), region) for i, region in enumerate(p.Region)
    ]
    assert not {r.model for r in rows} & UNPUBLISHED
    for r in rows:
        assert r.currency == r.region.currency
        assert r.origin.taken is not None and r.origin.source and r.origin.layer is p.Layer.SHIPPED
        assert r.mode == p.ANY  # the published prices do not depend on the mode


def test_h3_is_priced_per_second_with_reference_images_past_the_fifth():
    table = p.load_table()
    five = p.Render("MiniMax-H3", "t2v", "2K", 7, reference_images=5)
    eight = p.Render("MiniMax-H3", "t2v", "2K", 7, reference_images=8)
    assert table.price_of(five, p.Region.GLOBAL).amount == Decimal("0.91")  # type: ignore[union-attr]
    price = table.price_of(eight, p.Region.GLOBAL)
    assert isinstance(price, p.Price)
    assert price.amount == Decimal("1.03") and [c.quantity for c in price.charges] == [7, 3]
    assert table.price_of(eight, p.Region.MAINLAND).amount == Decimal("6.20")  # type: ignore[union-attr]
    # A price per second needs the duration; without one it is the model's default (H3: 5 s).
    assert table.price_of(p.Render("MiniMax-H3", "t2v", "768P", None), p.Region.GLOBAL).amount == Decimal("0.40")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "host,region",
    [
        ("https://api.minimax.io", p.Region.GLOBAL),
        ("https://api.minimax.io/", p.Region.GLOBAL),
        ("api.minimaxi.com", p.Region.MAINLAND),
        ("https://API.MINIMAXI.COM", p.Region.MAINLAND),
        ("https://api.minimaxi.chat", p.Region.GLOBAL),
        ("https://api.minimax.chat", p.Region.MAINLAND),
        ("http://127.0.0.1:8123", p.SIM_REGION),
        ("http://localhost:8123", p.SIM_REGION),
        ("https://proxy.example.com", None),
    ],
)
def test_the_region_follows_the_host(host, region):
    assert p.region_for_host(host) is region


def test_the_simulator_plays_global_unless_told_otherwise(sim):
    assert p.SIM_REGION is p.Region.GLOBAL
    assert p.region_for_host(sim.base_url) is p.Region.GLOBAL
    assert p.region_for_host(sim.base_url, loopback=p.Region.MAINLAND) is p.Region.MAINLAND
    assert p.choose_region("mainland", sim.base_url) is p.Region.MAINLAND


def test_a_host_of_no_known_region_asks_for_one():
    with pytest.raises(p.UsageError, match="say --region global or --region mainland"):
        p.choose_region(None, "https://proxy.example.com")
    unpriced = p.load_table().price_of(p.Render("MiniMax-Hailuo-02", "t2v", "768P", 6), None)
    assert not unpriced.priced and "region is unknown" in unpriced.reason  # type: ignore[union-attr]


def test_a_render_takes_the_models_defaults_where_the_request_leaves_them_out():
    s2v = rules.summarize({"model": "S2V-01", "subject_reference": [{"type": "character", "image": ["https://x/a.png"]}]})
    assert p.Render.of(s2v) == p.Render("S2V-01", "s2v", "720P", 6)
    assert p.Render.of({"model": "MiniMax-Hailuo-02", "mode": facts.Mode.I2V}) == p.Render("MiniMax-Hailuo-02", "i2v", "768P", 6)


# --- overrides --------------------------------------------------------------------------------

CONFIG_PRICES = """
api_host = "https://api.minimax.io"

[prices]
source = "our contract 2026-17"
taken = 2026-11-30

[[prices.global]]
model = "MiniMax-Hailuo-02"
resolution = "768P"
duration = 6
price = "0.25"

[[prices.global]]
model = "T2V-01"
duration = 6
price = 0.2

[[prices.mainland]]
model = "S2V-01"
resolution = "720P"
duration = 6
price = "1.10"
"""


def test_the_config_files_prices_replace_shipped_rows_row_by_row_and_say_so(config_file):
    path = config_file(CONFIG_PRICES)
    table = p.load_table()
    hailuo = table.price_of(p.Render("MiniMax-Hailuo-02", "t2v", "768P", 6), p.Region.GLOBAL)
    assert isinstance(hailuo, p.Price) and hailuo.amount == Decimal("0.25")
    origin = hailuo.charges[0].row.origin
    assert (origin.layer, origin.file, origin.source, str(origin.taken)) == (p.Layer.CONFIG, str(path), "our contract 2026-17", "2026-11-30")
    # the rows it does not replace stay shipped
    ten = table.price_of(p.Render("MiniMax-Hailuo-02", "t2v", "768P", 10), p.Region.GLOBAL)
    assert ten.amount == Decimal("0.56") and ten.charges[0].row.origin.layer is p.Layer.SHIPPED  # type: ignore[union-attr]
    # a model with no published price gets one; a float written in TOML is read as written
    assert table.price_of(p.Render("T2V-01", "t2v", "720P", 6), p.Region.GLOBAL).amount == Decimal("0.2")  # type: ignore[union-attr]
    assert not table.price_of(p.Render("T2V-01", "t2v", "720P", 6), p.Region.MAINLAND).priced
    assert table.price_of(p.Render("S2V-01", "s2v", None, None), p.Region.MAINLAND).amount == Decimal("1.10")  # type: ignore[union-attr]
    assert table.unpriced_models(p.Region.GLOBAL) == ["T2V-01-Director", "I2V-01", "I2V-01-Director", "I2V-01-live", "S2V-01"]
    listed = {(r.row.model, r.row.resolution, r.row.duration): r for r in table.in_effect(p.Region.GLOBAL)}
    replaced = listed["MiniMax-Hailuo-02", "768P", 6]
    assert replaced.row.price == Decimal("0.25") and [r.price for r in replaced.replaces] == [Decimal("0.28")]
    assert replaced.replaces[0].origin.layer is p.Layer.SHIPPED
    # the key and host settings of the same file still work
    assert config.credentials().host == "https://api.minimax.io"


def test_a_manifest_wins_over_the_config_file_which_wins_over_the_shipped_table(config_file, tmp_path):
    config_file(CONFIG_PRICES)
    manifest = tmp_path / "shots.toml"
    table = p.load_table().with_manifest(
        {"global": [{"model": "MiniMax-Hailuo-02", "resolution": "768P", "duration": 6, "price": "0.20"}]}, manifest
    )
    price = table.price_of(p.Render("MiniMax-Hailuo-02", "t2v", "768P", 6), p.Region.GLOBAL)
    assert price.amount == Decimal("0.20")  # type: ignore[union-attr]
    assert price.charges[0].row.origin == p.Origin(p.Layer.MANIFEST, str(manifest))  # type: ignore[union-attr]
    row = next(r for r in table.in_effect(p.Region.GLOBAL) if r.row.key == price.charges[0].row.key)  # type: ignore[union-attr]
    assert [(r.price, r.origin.layer) for r in row.replaces] == [(Decimal("0.25"), p.Layer.CONFIG), (Decimal("0.28"), p.Layer.SHIPPED)]
    assert table.with_manifest(None, manifest) is table and table.with_manifest({}, manifest) is table


def test_within_a_layer_the_most_specific_row_wins_and_across_layers_the_higher_layer():
    shipped = p.load_table()
    table = shipped.with_manifest(
        {
            "global": [
                {"model": "MiniMax-Hailuo-02", "per": "second", "price": "0.01"},
                {"model": "MiniMax-Hailuo-02", "mode": "i2v", "per": "second", "price": "0.02"},
            ]
        },
        "m.toml",
    )
    # the manifest's per-second rows win over the shipped per-video row...
    assert table.price_of(p.Render("MiniMax-Hailuo-02", "t2v", "1080P", 6), p.Region.GLOBAL).amount == Decimal("0.06")  # type: ignore[union-attr]
    # ...and the one for the render's mode over the one for any mode
    assert table.price_of(p.Render("MiniMax-Hailuo-02", "i2v", "1080P", 6), p.Region.GLOBAL).amount == Decimal("0.12")  # type: ignore[union-attr]
    # other models keep their shipped prices
    assert table.price_of(p.Render("MiniMax-Hailuo-2.3", "t2v", "1080P", 6), p.Region.GLOBAL).amount == Decimal("0.49")  # type: ignore[union-attr]


# --- bad override data ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row,field,message",
    [
        ('model = "T2V-01"\nduration = 6\nprice = "-0.10"', "prices.global[0].price", "must not be negative"),
        ('model = "T2V-01"\nduration = 6\nprice = "0.10"\ncurrency = "EUR"', "prices.global[0].currency", "unknown currency 'EUR'; MiniMax bills in USD (global), CNY (mainland)"),
        ('model = "T2V-01"\nduration = 6\nprice = "0.10"\ncurrency = "CNY"', "prices.global[0].currency", "global prices are in USD, not CNY"),
        ('model = "T2V-01"\nduration = 6\nprise = "0.10"', "prices.global[0].prise", "unknown field (did you mean 'price'?)"),
        ('model = "T2V-01"\nduration = 6\nprice = "cheap"', "prices.global[0].price", "must be a decimal number"),
        ('model = "T2V-01"\nprice = "0.10"', "prices.global[0].duration", "is required for a price per video"),
        ('model = "T2V-01"\nduration = 6.5\nprice = "0.10"', "prices.global[0].duration", "whole number of seconds"),
        ('model = "T2V-01"\nper = "second"\nduration = 6\nprice = "0.10"', "prices.global[0].duration", "only for a price per video"),
        ('model = "T2V-01"\nper = "minute"\nprice = "0.10"', "prices.global[0].per", "must be one of video, second, reference_image"),
        ('model = "T2V-01"\nmode = "text"\nduration = 6\nprice = "0.10"', "prices.global[0].mode", "must be one of any, t2v"),
        ('duration = 6\nprice = "0.10"', "prices.global[0].model", "is required"),
        ('model = "Minimax-Hailuo-02"\nduration = 6\nprice = "0.10"', "prices.global[0].model", "unknown model 'Minimax-Hailuo-02'; did you mean 'MiniMax-Hailuo-02'?"),
        ('model = "T2V-01"\nduration = 6\nprice = "0.10"\ntaken = "yesterday"', "prices.global[0].taken", "must be a date"),
    ],
)
def test_bad_config_prices_name_the_file_and_the_field(config_file, row, field, message):
    path = config_file(f"[[prices.global]]\n{row}\n")
    with pytest.raises(ConfigError) as err:
        p.load_table()
    assert f"config file {path}: {field}: " in str(err.value)
    assert message in str(err.value)


def test_bad_tables_in_a_config_file(config_file):
    path = config_file('[prices]\nglobl = []\n')
    with pytest.raises(ConfigError, match=rf"config file {path}: prices.globl: unknown key \(did you mean 'global'\?\)"):
        p.load_table()
    config_file('[prices]\nglobal = "cheap"\n')
    with pytest.raises(ConfigError, match=r"prices.global: must be an array of rows"):
        p.load_table()
    config_file('prices = 3\n')
    with pytest.raises(ConfigError, match=r"config file .*: prices: must be a table, not a number"):
        p.load_table()
    config_file('[[prices.global]]\nmodel = "T2V-01"\nduration = 6\nprice = "1"\n[[prices.global]]\nmodel = "T2V-01"\nduration = 6\nprice = "2"\n')
    with pytest.raises(ConfigError, match=r"prices.global\[1\]: prices the same renders as global\[0\]"):
        p.load_table()


def test_bad_manifest_prices_are_manifest_problems_with_file_and_field(tmp_path):
    manifest = tmp_path / "shots.toml"
    data = {"global": [{"model": "T2V-01", "duration": 6, "price": "-1"}, {"model": "T2V-01", "duration": 6, "price": "1", "curency": "USD"}]}
    with pytest.raises(ManifestError) as err:
        p.load_table().with_manifest(data, manifest)
    problems = [(x.file, x.field) for x in err.value.problems]
    assert problems == [(str(manifest), "prices.global[0].price"), (str(manifest), "prices.global[1].curency")]
    assert "did you mean 'currency'?" in str(err.value) and "2 problems; nothing was sent or written." in str(err.value)


def test_any_amount_prints_without_a_traceback(tmp_path, sim_env):
    assert [p.money(Decimal(a)) for a in ("0.28", "0.5", "100", "1.234", "1E-7", "1e30")] == ["0.28", "0.50", "100.00", "1.234", "0.0000001", "1" + "0" * 30 + ".00"]
    manifest = tmp_path / "shots.toml"
    manifest.write_text('output_dir = "out"\n[[prices.global]]\nmodel = "MiniMax-Hailuo-02"\nduration = 6\nprice = "1e30"\n'
                        '[[jobs]]\nname = "a"\nmodel = "MiniMax-Hailuo-02"\nprompt = "x"\n[[jobs]]\nname = "b"\nmodel = "T2V-01"\nprompt = "x"\n')
    result = cli(["plan", manifest])
    assert result.exit_code == 0 and "Total: 1000000000000000000000000000000.00 USD + 1 unpriced render" in result.output, result.output
    result = cli(["run", manifest, "--max-cost", "5", "--unpriced-as", "1e400"])
    assert result.exit_code == 2 and "more than --max-cost 5.00 USD" in result.output, result.output


def test_a_bad_config_file_is_a_clean_error_from_the_cli_not_a_traceback(config_file):
    path = config_file('[[prices.global]]\nmodel = "T2V-01"\nduration = 6\nprice = "-0.10"\n')
    result = cli(["prices", "--region", "global"])
    assert result.exit_code == 2
    assert f"error: config file {path}: prices.global[0].price: must not be negative" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_setting_still_names_the_settings_and_the_prices_table(config_file):
    config_file('apikey = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting apikey; settings are api_key, api_host, and the tables \[prices\]"):
        config.credentials()


# --- estimates --------------------------------------------------------------------------------


def test_an_estimate_totals_priced_renders_per_model_and_resolution_and_counts_unpriced_apart():
    table = p.load_table()
    renders = [
        *[p.Render("MiniMax-Hailuo-02", "t2v", "768P", 6)] * 3,
        p.Render("MiniMax-Hailuo-02", "i2v", "1080P", 6),
        p.Render("T2V-01", "t2v", "720P", 6),
        p.Render("MiniMax-Hailuo-02", "t2v", "768P", 10),
    ]
    est = table.estimate(renders, p.Region.GLOBAL)
    assert (est.renders, est.unpriced, est.complete) == (6, 1, False)
    assert est.totals == {"USD": Decimal("0.28") * 3 + Decimal("0.49") + Decimal("0.56")}
    assert est.total() == Decimal("1.89") and est.total("CNY") == Decimal(0)
    assert [(line.model, line.resolution, line.renders, line.amount, line.unpriced) for line in est.lines] == [
        ("MiniMax-Hailuo-02", "768P", 4, Decimal("1.40"), 0),
        ("MiniMax-Hailuo-02", "1080P", 1, Decimal("0.49"), 0),
        ("T2V-01", "720P", 1, Decimal(0), 1),
    ]
    as_json = est.to_json()
    assert as_json["totals"] == {"USD": "1.89"} and as_json["lines"][2]["price"] is None
    mainland = table.estimate(renders, p.Region.MAINLAND)
    assert mainland.totals == {"CNY": Decimal("2.00") * 3 + Decimal("3.50") + Decimal("4.00")}
    assert table.estimate([], p.Region.GLOBAL).complete and table.estimate([], p.Region.GLOBAL).total() == 0


def test_money_shows_two_decimals_or_as_many_as_the_price_has():
    assert p.money(Decimal("0.2"), "USD") == "0.20 USD"
    assert p.money(Decimal("0.125")) == "0.125"
    assert p.money(Decimal("3")) == "3.00"


# --- the command ------------------------------------------------------------------------------


def test_prices_prints_the_table_of_the_hosts_region_with_its_sources():
    result = cli(["prices", "--api-host", "https://api.minimax.io"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Prices for the global region, in USD (the region of https://api.minimax.io)" in out
    assert _row(out, "MiniMax-Hailuo-02", "768P, 10 s") == ["MiniMax-Hailuo-02", "any", "768P,", "10", "s", "0.56", "shipped", "[1]"]
    assert _row(out, "MiniMax-H3", "each reference image past the 5th")[-3:] == ["0.04", "shipped", "[1]"]
    assert "[1] shipped with vidbatch, taken 2026-12-02: MiniMax pay-as-you-go pricing pages" in out
    assert "No price known for T2V-01, T2V-01-Director, I2V-01, I2V-01-Director, I2V-01-live, S2V-01" in out
    mainland = cli(["prices", "--region", "mainland"]).output
    assert "in CNY (--region mainland)" in mainland and _row(mainland, "MiniMax-Hailuo-2.3-Fast", "1080P, 6 s")[-3] == "2.31"


def test_prices_shows_which_rows_the_config_file_replaced(config_file):
    path = config_file(CONFIG_PRICES)
    result = cli(["prices"])  # the host comes from the config file too
    assert result.exit_code == 0, result.output
    assert "(the region of https://api.minimax.io)" in result.output
    assert _row(result.output, "MiniMax-Hailuo-02", "768P, 6 s")[-7:] == ["0.25", "config", "[1],", "replaces", "0.28", "(shipped", "[2])"]
    assert _row(result.output, "T2V-01", "any resolution, 6 s")[-3:] == ["0.20", "config", "[1]"]
    assert f"[1] config file {path}, taken 2026-11-30: our contract 2026-17" in result.output
    assert "No price known for T2V-01-Director," in result.output


def test_prices_json_carries_every_row_with_its_origin(config_file):
    path = config_file(CONFIG_PRICES)
    result = cli(["prices", "--json"])
    data = json.loads(result.output)
    assert (data["region"], data["currency"], data["host"]) == ("global", "USD", "https://api.minimax.io")
    rows = {(r["model"], r["resolution"], r["duration"], r["per"]): r for r in data["rows"]}
    replaced = rows["MiniMax-Hailuo-02", "768P", 6, "video"]
    assert replaced["price"] == "0.25" and replaced["origin"]["layer"] == "config" and replaced["origin"]["file"] == str(path)
    assert [(r["price"], r["origin"]["layer"]) for r in replaced["replaces"]] == [("0.28", "shipped")]
    assert rows["MiniMax-H3", "2K", None, "second"]["price"] == "0.13"
    assert "S2V-01" in data["unpriced_models"] and "T2V-01" not in data["unpriced_models"]


def test_prices_of_a_host_of_no_known_region_says_to_name_one():
    result = cli(["prices", "--api-host", "https://proxy.example.com"])
    assert result.exit_code == 2
    assert "say --region global or --region mainland" in result.output


def test_prices_help_has_examples_and_the_override_format():
    result = cli(["prices", "--help"])
    assert "Examples:" in result.output and "[[prices.global]]" in result.output and "never free" in result.output
    assert "prices" in cli(["--help"]).output


def test_the_installed_command_finds_its_shipped_table(tmp_path):
    proc = cli_subprocess(["prices", "--json", "--region", "global"], cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).parents[1])})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(json.loads(out)["rows"]) == 14


def _row(output: str, model: str, spec: str) -> list[str]:
    """The words of the table line for ``model`` that prices ``spec``."""
    lines = [line for line in output.splitlines() if line.split()[:1] == [model] and f" {spec} " in line]
    assert len(lines) == 1, (model, spec, output)
    return lines[0].split()


# --- the account's balance --------------------------------------------------------------------


def test_a_balance_answer_is_read_into_decimals():
    answer = {
        "available_amount": "12.34",
        "cash_balance": "10.00",
        "voucher_balance": "2.34",
        "credit_balance": "0",
        "owed_amount": "0",
        "balance_alert_switch": True,
        "balance_alert_threshold": "5",
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }
    balance = p.parse_balance(answer, p.Region.GLOBAL)
    assert balance == p.Balance(Decimal("12.34"), Decimal("10.00"), Decimal("2.34"), Decimal(0), Decimal(0), True, Decimal(5), "USD")
    assert balance.to_json()["available"] == "12.34"


@pytest.mark.parametrize(
    "answer,available",
    [
        ({"available_amount": "1,234.50"}, Decimal("1234.50")),
        ({"available_amount": 3}, Decimal(3)),
        ({"available_amount": "", "cash_balance": "4"}, None),
        ({"available_amount": "n/a", "cash_balance": "4"}, None),
    ],
)
def test_a_balance_answer_with_odd_or_missing_fields_is_read_as_far_as_it_goes(answer, available):
    balance = p.parse_balance(answer)
    assert balance is not None and balance.available == available and balance.currency is None


@pytest.mark.parametrize(
    "answer",
    [None, "oops", [], {}, {"available_amount": None}, {"available_amount": True}, {"available_amount": "NaN"},
     {"available_amount": "5", "base_resp": {"status_code": 1004, "status_msg": "not authorized"}}],
)
def test_no_balance_is_none_never_an_error(answer):
    assert p.parse_balance(answer) is None


def test_the_shortfall_is_what_the_estimate_exceeds_the_balance_by():
    est = p.load_table().estimate([p.Render("MiniMax-Hailuo-02", "t2v", "1080P", 6)] * 10, p.Region.GLOBAL)  # 4.90 USD
    assert p.shortfall(est, p.parse_balance({"available_amount": "4.00"}, p.Region.GLOBAL)) == Decimal("0.90")
    assert p.shortfall(est, p.parse_balance({"available_amount": "4.90"}, p.Region.GLOBAL)) is None
    assert p.shortfall(est, p.parse_balance({"available_amount": "1"}, p.Region.MAINLAND)) is None  # CNY vs USD
    assert p.shortfall(est, None) is None
