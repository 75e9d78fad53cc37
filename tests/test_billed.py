"""What MiniMax billed, as money: Video Generation V2's ``usage`` (seconds and images) priced with
the rates each spend entry's quote kept, shown as billed beside what is still an estimate.

Pure pricing of usage first, then the runner over a scripted account (cancel, unpriced), then the
real CLI's ``run --sim`` with H3 jobs in the global (USD) and mainland (CNY) regions."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from vidbatch import costing, ledger, prices, project as project_mod
from vidbatch.plan import plan_jobs
from vidbatch.prices import Region

from .helpers import cli, json_events, png, write
from .test_h3_run import Harness

H3 = "MiniMax-H3"
RUN = ["--poll-interval", "0", "--rpm", "60000"]


def rates(resolution: str = "2K", duration: int = 8, reference_images: int = 0, region: Region = Region.GLOBAL) -> list[dict[str, object]]:
    price = prices.load_table(config_file=Path("/nonexistent")).price_of({"model": H3, "mode": "t2v", "resolution": resolution, "duration": duration, "reference_images": reference_images}, region)
    assert isinstance(price, prices.Price)
    return ledger.rates_of(price)


def usage(output: int, images: int = 0) -> dict[str, int]:
    return {"total_seconds": output, "input_seconds": 0, "output_seconds": output, "input_image_count": images}


# --- pricing usage ---------------------------------------------------------------------------------


def test_usage_is_priced_per_output_second_by_resolution_plus_each_image_past_the_fifth():
    assert ledger.billed_amount(usage(8), rates("2K")) == Decimal("0.13") * 8
    assert ledger.billed_amount(usage(8), rates("768P")) == Decimal("0.08") * 8
    assert ledger.billed_amount(usage(8), rates("2K", region=Region.MAINLAND)) == Decimal("0.80") * 8
    # billed seconds, not the quoted duration, make the amount
    assert ledger.billed_amount(usage(6), rates("2K", duration=8)) == Decimal("0.13") * 6
    # the image rate is kept even when the quote charged no image: 7 billed images, 2 past the 5th
    assert ledger.billed_amount(usage(5, images=7), rates("2K", duration=5, reference_images=2)) == Decimal("0.65") + Decimal("0.08")
    assert ledger.billed_amount(usage(5, images=7), rates("2K", duration=5, reference_images=7)) == Decimal("0.73")
    assert ledger.billed_amount(usage(5, images=5), rates("2K", duration=5)) == Decimal("0.65")


def test_nothing_billed_is_zero_and_what_no_rate_prices_is_unpriced_never_free():
    assert ledger.billed_amount(usage(0), rates()) == 0
    assert ledger.billed_amount(usage(0), None) == 0  # a cancelled task costs nothing, priced or not
    assert ledger.billed_amount(usage(8), None) is None  # no quote: unpriced
    old = [{"layer": "shipped", "file": "prices.toml", "taken": None, "source": None}]  # a quote kept before rates
    assert ledger.billed_amount(usage(8), old) is None
    per_video = [{"per": "video", "unit_price": "0.28", "quantity": 1}]
    assert ledger.billed_amount(usage(6), per_video, duration=6) == Decimal("0.28")
    assert ledger.billed_amount(usage(10), per_video, duration=6) is None  # the table priced 6 s, not 10


def entry(amount: str | None, billed: bool, currency: str = "USD") -> ledger.SpendEntry:
    return ledger.SpendEntry(1, 0.0, "k", "t", ledger.SpendKind.ACCEPTED, "a", "m", H3, "2K", 8, None if amount is None else Decimal(amount), currency, "global", billed=billed)


def test_sums_say_which_amounts_were_billed_and_which_are_estimates():
    assert ledger.Tally.of([entry("0.28", False), entry("0.28", False)]).describe() == "0.56 USD"
    assert ledger.Tally.of([entry("1.04", True), entry("0", True)]).describe() == "1.04 USD billed"
    mixed = ledger.Tally.of([entry("1.04", True), entry("0.28", False), entry(None, False)])
    assert mixed.describe() == "1.32 USD + 1 unpriced (1.04 USD billed, 0.28 USD + 1 unpriced estimated)"
    assert mixed.split_json() == {
        "billed": {"creates": 1, "totals": {"USD": "1.04"}},
        "estimated": {"creates": 2, "totals": {"USD": "0.28"}, "unpriced": 1},
    }
    book = ledger.Ledger((entry("1.04", True),))
    assert ledger.run_spend_line(book) == "spent 1.04 USD billed in this run (1 create accepted)"
    assert ledger.run_spend_line(ledger.Ledger((entry("0.28", False),))).startswith("spent about 0.28 USD in")


# --- the runner over a scripted account --------------------------------------------------------------


def quoted_run(h: Harness, region: Region = Region.GLOBAL) -> None:
    """Quote the plan as a run does (the table in effect, written before any create), then run it."""
    manifests = project_mod.load([h.manifest]).manifests
    budget = costing.Budget.for_workspace(manifests, "https://api.minimax.io" if region is Region.GLOBAL else "https://api.minimaxi.com")
    budget.quote(plan_jobs(manifests, h.store), h.store)
    h.run()


def test_a_finished_h3_task_is_billed_from_its_usage_at_the_quoted_rates(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})
    quoted_run(h, Region.MAINLAND)
    (row,) = h.store.db.query("select amount, currency, billed_amount, usage from spend")
    assert json.loads(row["usage"])["output_seconds"] == 5
    assert (row["amount"], row["currency"], row["billed_amount"]) == ("4.00", "CNY", "4.00")
    book = ledger.ledger(h.store)
    assert book.spent.describe() == "4.00 CNY billed" and book.entries[0].billed


def test_a_cancelled_queued_task_is_billed_nothing(tmp_path):
    from vidbatch.runner import Cancelled, cancel_jobs

    h = Harness(tmp_path, {"a": "H3 shot A"})
    manifests = project_mod.load([h.manifest]).manifests
    costing.Budget.for_workspace(manifests, "https://api.minimax.io").quote(plan_jobs(manifests, h.store), h.store)
    (job,) = [pj.job for pj in h.plan().jobs]
    h.store.record_seen(job.key, {}, model=H3, mode="t2v", duration=5, resolution="2K", prompt="a", name="a")
    h.store.record_intent(job.key, name="a")
    h.store.record_submitted(job.key, h.client.make_v2_task({"model": H3}, status="queued"), name="a")
    assert [o.result for o in cancel_jobs(h.store, h.client, [job], record=True)] == [Cancelled.CANCELLED]
    (row,) = h.store.db.query("select amount, billed_amount from spend")
    assert (row["amount"], row["billed_amount"]) == ("0.65", "0")
    assert ledger.ledger(h.store).spent.describe() == "0.00 USD billed"


def test_a_render_the_table_has_no_price_for_stays_unpriced_after_its_usage(tmp_path):
    h = Harness(tmp_path, {"a": "H3 shot A"})
    plan = h.plan()
    ledger.write_quotes(h.store, {pj.job.key: prices.Unpriced(costing.render_of(pj.job), Region.GLOBAL, "no price") for pj in plan.jobs}, Region.GLOBAL)
    h.run()
    (row,) = h.store.db.query("select amount, billed_amount, usage from spend")
    assert row["usage"] and row["amount"] is None and row["billed_amount"] is None
    spent = ledger.ledger(h.store).spent
    assert (spent.unpriced, spent.billed_creates, spent.describe()) == (1, 0, "1 unpriced")


# --- the real CLI: run --sim ------------------------------------------------------------------------


def h3_manifest(folder: Path) -> Path:
    """examples/h3.toml's shapes: text 8 s, first+last frames 10 s, and 7 reference images 5 s."""
    images = []
    for i in range(7):
        images.append(f"in/ref{i}.png")
        png(folder / "in" / f"ref{i}.png", 640, 360, (30 * i, 80, 40))
    png(folder / "in" / "first.png", 640, 360, (200, 80, 40))
    png(folder / "in" / "last.png", 640, 360, (40, 80, 200))
    refs = ", ".join(f'"{p}"' for p in images)
    return write(
        folder,
        "h3.toml",
        f"""
        output_dir = "renders"
        [defaults]
        model = "MiniMax-H3"
        [[jobs]]
        name = "meadow"
        prompt = "A slow aerial glide over a meadow"
        ratio = "21:9"
        duration = 8
        [[jobs]]
        name = "day-breaks"
        prompt = "The sun climbs over the meadow"
        first_frame_image = "in/first.png"
        last_frame_image = "in/last.png"
        duration = 10
        [[jobs]]
        name = "crowd"
        prompt = "Seven faces in the meadow"
        reference_images = [{refs}]
        ratio = "9:16"
        """,
    )


@pytest.mark.parametrize(
    ("region", "currency", "second", "image"),
    [("global", "USD", Decimal("0.13"), Decimal("0.04")), ("mainland", "CNY", Decimal("0.80"), Decimal("0.20"))],
)
def test_an_h3_run_against_the_simulator_ends_with_billed_spend(tmp_path, monkeypatch, region, currency, second, image):
    monkeypatch.chdir(tmp_path)
    manifest = h3_manifest(tmp_path)
    ran = cli(["run", manifest, "--sim", "--region", region, "--json", *RUN])
    assert ran.exit_code == 0, ran.output
    want = {"meadow": second * 8, "day-breaks": second * 10, "crowd": second * 5 + image * 2}
    total = sum(want.values(), Decimal(0))
    finish = [e for e in json_events(ran.output) if e["event"] == "finish"][-1]
    this_run = finish["spend"]["this_run"]
    assert this_run["billed"] == {"creates": 3, "totals": {currency: str(total)}}
    assert this_run["estimated"] == {"creates": 0, "totals": {}, "unpriced": 0}

    spend = json.loads(cli(["spend", manifest, "--sim", "--region", region, "--json"]).output)
    got = {e["name"]: (Decimal(e["amount"]), e["currency"], e["billed"]) for e in spend["entries"]}
    assert got == {name: (amount, currency, True) for name, amount in want.items()}
    assert spend["billed"]["totals"] == {currency: str(total)} and spend["estimated"]["creates"] == 0
    assert spend["spent"]["totals"] == {currency: str(total)}

    text = cli(["spend", manifest, "--sim", "--region", region]).output
    assert f"Spent: {prices.money(total, currency)} billed (3 accepted creates)" in text
    status = cli(["status", manifest, "--sim"]).output
    assert f"{prices.money(total, currency)} billed" in status
    summary = cli(["run", manifest, "--sim", "--region", region, *RUN])  # nothing to do: no spend line
    assert summary.exit_code == 0 and "billed" not in summary.output


def test_the_run_summary_says_billed_for_h3_and_about_for_v1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = write(
        tmp_path,
        "mixed.toml",
        """
        output_dir = "renders"
        [[jobs]]
        name = "h3"
        model = "MiniMax-H3"
        prompt = "An H3 shot"
        ratio = "16:9"
        [[jobs]]
        name = "v1"
        model = "MiniMax-Hailuo-02"
        prompt = "A Hailuo shot"
        """,
    )
    ran = cli(["run", manifest, "--sim", *RUN])
    assert ran.exit_code == 0, ran.output
    assert "spent about 0.93 USD (0.65 USD billed, 0.28 USD estimated) in this run (2 creates accepted)" in ran.output
