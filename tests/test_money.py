"""Money in view: a plan's bill in the region's currency, --max-cost before any call, the spend
ledger after real runs against the simulator (failures, reuse, an uncertain create), the
account's balance, and `vidbatch spend`.

The CLI's plan/run lines are wired by the lead at merge (see vidbatch.costing); these tests drive
the library the way that patch does: ``Budget.check`` before any create, ``Budget.admit`` writes
the price of each billable render into the state before the run.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from vidbatch import costing, facts, ledger, prices, project
from vidbatch.client import Client
from vidbatch.errors import UsageError
from vidbatch.events import EventKind
from vidbatch.plan import Action
from vidbatch.runner import RunOptions
from vidbatch.session import Session
from vidbatch.state import ErrorInfo, RenderState, Store

from .conftest import TEST_KEY
from .helpers import cli, png, t2v_manifest, write
from .test_prices import CONTRACT_PER_SECOND, CONTRACT_PER_VIDEO, UNPUBLISHED, every_render_the_facts_allow

FAST = RunOptions(concurrency=1, rpm=60000, poll_interval=0)


def every_render_manifest(folder: Path) -> Path:
    """A manifest with one job per model, mode, resolution and duration the facts allow."""
    png(folder / "images" / "first.png")
    png(folder / "images" / "last.png", colour=(10, 200, 30))
    png(folder / "images" / "face.png", 512, 512)
    jobs = []
    for i, (model, mode, resolution, seconds) in enumerate(every_render_the_facts_allow()):
        lines = [f'name = "r{i}"', f'model = "{model}"', f'prompt = "shot {i}"']
        if facts.MODELS[model].api is facts.Api.V2:
            lines += [f'resolution = "{resolution}"', f"duration = {seconds}"]
            lines += {
                facts.Mode.T2V: ['ratio = "16:9"'],
                facts.Mode.I2V: ['first_frame_image = "images/first.png"'],
                facts.Mode.FL2V: ['first_frame_image = "images/first.png"', 'last_frame_image = "images/last.png"'],
                facts.Mode.LF2V: ['last_frame_image = "images/last.png"'],
                facts.Mode.R2V: ['reference_images = ["images/first.png", "images/face.png"]'],
            }[mode]
            jobs.append("[[jobs]]\n" + "\n".join(lines) + "\n")
            continue
        if mode is facts.Mode.S2V:
            lines.append('subject_reference = "images/face.png"')
        else:
            lines += [f'resolution = "{resolution}"', f"duration = {seconds}"]
        if mode in (facts.Mode.I2V, facts.Mode.FL2V):
            lines.append('first_frame_image = "images/first.png"')
        if mode is facts.Mode.FL2V:
            lines.append('last_frame_image = "images/last.png"')
        jobs.append("[[jobs]]\n" + "\n".join(lines) + "\n")
    return write(folder, "all.toml", 'output_dir = "renders"\n\n' + "\n".join(jobs))


@pytest.mark.parametrize(("host", "column", "currency"), [(facts.HOST_GLOBAL, 0, "USD"), (facts.HOST_MAINLAND, 1, "CNY")])
def test_a_plan_over_every_render_the_facts_allow_is_priced_as_the_table_says(tmp_path, host, column, currency):
    ws = project.load([every_render_manifest(tmp_path)])
    plan = project.plan(ws)
    assert len(plan.billable) == len(every_render_the_facts_allow())
    cost = costing.Budget.for_workspace(ws.manifests, host).cost(plan)

    assert cost.region is prices.region_for_host(host) and cost.currency == currency
    expected_total = Decimal(0)
    unpriced = 0
    for job in cost.jobs:
        r = job.price.render
        assert job.counts == "bill"
        if r.model in UNPUBLISHED:
            assert isinstance(job.price, prices.Unpriced), r
            unpriced += 1
            continue
        if (r.model, r.resolution) in CONTRACT_PER_SECOND:
            want = Decimal(CONTRACT_PER_SECOND[(r.model, r.resolution)][column]) * (r.duration or 0)
        else:
            want = Decimal(CONTRACT_PER_VIDEO[(r.model, r.resolution, r.duration)][column])
        assert isinstance(job.price, prices.Price) and job.price.amount == want and job.price.currency == currency, r
        expected_total += want
    assert cost.total == expected_total and cost.unpriced == unpriced > 0
    text = "\n".join(cost.lines())
    assert f"Total: {prices.money(expected_total, currency)} + {unpriced} unpriced renders ({cost.region.value} region; shipped prices of" in text
    one = "0.28" if currency == "USD" else "2.00"
    assert "    1 x MiniMax-Hailuo-02 t2v 768P 6s" in text and f"  {one} {currency}\n" in text
    assert "    1 x T2V-01 t2v 720P 6s" in text and "1 x S2V-01 s2v subject reference" in text

    as_json = cost.annotate(plan.to_json())
    assert as_json["summary"]["cost"]["total"] == str(expected_total)
    assert as_json["summary"]["cost"]["currency"] == currency and as_json["summary"]["cost"]["unpriced"] == unpriced
    fast = next(j for j in as_json["jobs"] if j["model"] == "MiniMax-Hailuo-2.3-Fast")
    assert fast["cost"]["price"] == CONTRACT_PER_VIDEO[("MiniMax-Hailuo-2.3-Fast", "768P", 6)][column] and fast["cost"]["counts"] == "bill"
    assert all(j["cost"]["priced"] is (j["model"] not in UNPUBLISHED) for j in as_json["jobs"])


def test_the_simulator_plays_global_unless_configured_and_a_manifest_prices_table_wins(tmp_path):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox"}))
    ws = project.load([path])
    plan = project.plan(ws)
    assert costing.Budget.for_workspace(ws.manifests, "http://127.0.0.1:9").cost(plan).describe() == "0.28 USD"
    mainland = costing.Budget.for_workspace(ws.manifests, "http://127.0.0.1:9", sim_region=prices.Region.MAINLAND)
    assert mainland.cost(plan).describe() == "2.00 CNY"
    assert costing.Budget.for_workspace(ws.manifests, "https://proxy.example").cost(plan).describe() == "1 unpriced render"

    ws.manifests[0].prices = {"global": [{"model": "MiniMax-Hailuo-02", "resolution": "768P", "duration": 6, "price": "0.20"}]}
    assert costing.Budget.for_workspace(ws.manifests, facts.HOST_GLOBAL).cost(plan).describe() == "0.20 USD"


def test_reuse_and_skips_are_shown_as_saved(tmp_path, sim):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    run_with_budget(project.load([path]), sim)
    write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl", "fox-copy": "A fox", "bear": "A bear"}))
    ws = project.load([path])
    plan = project.plan(ws)
    assert sorted(p.action.value for p in plan.jobs) == ["reuse", "skip", "skip", "submit"]
    cost = costing.Budget.for_workspace(ws.manifests, sim.base_url).cost(plan)
    assert cost.total == Decimal("0.28") and cost.saved.total() == Decimal("0.84")
    assert cost.saved_by["skip"].renders == 2 and cost.saved_by["reuse"].renders == 1
    assert cost.lines()[-1] == "Saved against rendering everything from scratch: 0.84 USD (2 skip, 1 reuse)."


# --- caps ----------------------------------------------------------------------------------------


def test_max_cost_below_the_estimate_refuses_with_exit_2_and_no_call(tmp_path, sim):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    ws = project.load([path])
    budget = costing.Budget.for_workspace(ws.manifests, sim.base_url, max_cost="0.55")
    with Client(TEST_KEY, sim.base_url) as client, pytest.raises(UsageError) as refused:
        project.run(ws, client, FAST, confirm=lambda plan: bool(budget.check(plan)))
    assert refused.value.exit_code == 2
    assert "would cost 0.56 USD, more than --max-cost 0.55 USD" in str(refused.value)
    assert sum(sim.sim.calls.values()) == 0

    above = costing.Budget.for_workspace(ws.manifests, sim.base_url, max_cost="0.56")
    with Client(TEST_KEY, sim.base_url) as client:
        result = project.run(ws, client, FAST, confirm=lambda plan: bool(above.check(plan)))
    assert result.exit_code == 0 and sim.sim.calls["create"] == 2


def test_unpriced_renders_refuse_a_cap_unless_told_how_to_count_them(tmp_path):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}, extra_defaults='model = "T2V-01"\n').replace('model = "MiniMax-Hailuo-02"\n', ""))
    ws = project.load([path])
    plan = project.plan(ws)
    with pytest.raises(UsageError, match="2 renders with no known price.*--unpriced-as AMOUNT"):
        costing.Budget.for_workspace(ws.manifests, facts.HOST_GLOBAL, max_cost="100").check(plan)
    assert costing.Budget.for_workspace(ws.manifests, facts.HOST_GLOBAL, max_cost="1", unpriced_as="0.50").check(plan).unpriced == 2
    with pytest.raises(UsageError, match=r"would cost 1.00 USD \(counting 2 unpriced at 0.50 each\), more than --max-cost 0.99 USD"):
        costing.Budget.for_workspace(ws.manifests, facts.HOST_GLOBAL, max_cost="0.99", unpriced_as="0.50").check(plan)
    assert costing.Budget.for_workspace(ws.manifests, facts.HOST_GLOBAL).check(plan).unpriced == 2  # no cap: no refusal
    with pytest.raises(UsageError, match="--max-cost must be an amount"):
        costing.parse_amount("lots")
    assert costing.parse_amount("2.50 USD") == Decimal("2.50")


def test_the_confirmation_question_shows_the_amount(tmp_path):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    ws = project.load([path])
    plan = project.plan(ws)
    cost = costing.Budget.for_workspace(ws.manifests, facts.HOST_MAINLAND).cost(plan)
    assert costing.confirm_question(cost, len(plan.billable)) == "Create 2 paid renders for 4.00 CNY?"


# --- balance -------------------------------------------------------------------------------------


def test_the_balance_is_read_from_the_simulator_and_a_plan_over_it_says_so(tmp_path):
    from vidbatch.sim import SimConfig, running_simulator

    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    ws = project.load([path])
    plan = project.plan(ws)
    with running_simulator(SimConfig(key=TEST_KEY, balance="0.50")) as server, Client(TEST_KEY, server.base_url) as client:
        balance = client.query_balance()
        assert balance is not None and balance.available == Decimal("0.50") and balance.currency == "USD"
        budget = costing.Budget.for_workspace(ws.manifests, server.base_url, balance=balance)
        warning = budget.warning(budget.cost(plan))
        assert warning is not None and "0.56 USD, more than the account's available balance of 0.50 USD (short by 0.06 USD)" in warning
        assert server.sim.calls["query_balance"] == 1 and server.sim.calls["create"] == 0
    with running_simulator(SimConfig(key=TEST_KEY, balance="100.00")) as server, Client(TEST_KEY, server.base_url) as client:
        budget = costing.Budget.for_workspace(ws.manifests, server.base_url, balance=client.query_balance())
        assert budget.warning(budget.cost(plan)) is None


def test_an_unreadable_balance_breaks_nothing(sim):
    from vidbatch.sim import SimConfig, running_simulator

    with Client(TEST_KEY, sim.base_url) as client:
        sim.sim.inject("query_balance", "http500")
        assert client.query_balance() is None
        sim.sim.inject("query_balance", "code:1004")
        assert client.query_balance() is None
        sim.sim.inject("query_balance", "drop")
        assert client.query_balance() is None
    with Client("sk-wrong", sim.base_url) as client:
        assert client.query_balance() is None
    with running_simulator(SimConfig(key=TEST_KEY, balance=None)) as server, Client(TEST_KEY, server.base_url) as client:
        assert client.query_balance() is None
    with Client(TEST_KEY, "http://127.0.0.1:9") as client:  # nothing listens
        assert client.query_balance() is None
    assert costing.balance_warning(costing.PlanCost(prices.Region.GLOBAL, (), prices.Estimate.of([], prices.Region.GLOBAL), prices.Estimate.of([], None)), None) is None


def test_a_balance_call_that_gets_no_answer_holds_nothing_up_for_long(sim):
    """Every run reads the balance before it creates anything; a host that took the call and
    never answered it (a proxy, an account without the call) held every run silently for the
    full read timeout of a create (60 s). The optional call has its own short one."""
    import time

    sim.sim.inject("query_balance", "slow", seconds=30)
    with Client(TEST_KEY, sim.base_url) as client:
        started = time.monotonic()
        assert client.query_balance() is None
        assert time.monotonic() - started < 10


# --- the ledger ----------------------------------------------------------------------------------


def run_with_budget(ws, server, options=FAST, **budget_args):
    """A run as the patched session does it: check and quote before any create, then run."""
    budget = costing.Budget.for_workspace(ws.manifests, server.base_url, **budget_args)
    with Client(TEST_KEY, server.base_url) as client, Session(ws.state_dir, client, options) as session:
        plan = session.plan(ws.manifests)
        assert session.admit(plan) is None
        budget.admit(plan, session.store)
        return session.run(plan)


def test_after_failures_reuse_and_an_uncertain_create_the_ledger_adds_up(tmp_path, sim):
    prompts = {"fox": "A fox", "owl": "An owl", "bad": "A sim-fail shot", "lost": "A lost answer"}
    path = write(tmp_path, "shots.toml", t2v_manifest(prompts, extra_defaults='resolution = "1080P"\n'))
    ws = project.load([path])
    sim.sim.inject("create", "drop_after_create", after=3)  # the 4th create: task made, answer lost
    first = run_with_budget(ws, sim)
    assert len(first.failed) == 1 and len(first.uncertain) == 1 and sim.sim.calls["create"] == 4

    # Second run: a new job with fox's request (reuse: no create), the failed one retried.
    write(tmp_path, "shots.toml", t2v_manifest({**prompts, "fox-again": "A fox"}, extra_defaults='resolution = "1080P"\n'))
    ws = project.load([path])
    plan = project.plan(ws, retry_failed=True)
    assert {p.job.name: p.action for p in plan.jobs}["fox-again"] is Action.REUSE
    second = run_with_budget(ws, sim, RunOptions(concurrency=1, rpm=60000, poll_interval=0, retry_failed=True))
    assert sim.sim.calls["create"] == 5 and len(second.failed) == 1

    store = Store(ws.state_dir, readonly=True)
    try:
        book = ledger.ledger(store)
        accepted_tasks = {e.task_id for e in book.entries if e.kind is ledger.SpendKind.ACCEPTED}
        # Each create MiniMax accepted, once: the simulator made 5 tasks, one of them behind the lost answer.
        assert len(sim.sim.tasks) == 5 and book.spent.creates == 4 and len(accepted_tasks) == 4
        assert book.spent.totals == {"USD": Decimal("0.49") * 4} and book.spent.unpriced == 0
        assert book.possible.creates == 1 and book.possible.totals == {"USD": Decimal("0.49")}
        assert book.failed.creates == 2  # "bad" was accepted twice and failed twice
        bad_key = next(e.key for e in book.entries if e.name == "bad")
        assert book.by_key()[bad_key] == ledger.Tally(2, {"USD": Decimal("0.98")}, 0)
        assert [e.name for e in book.entries if e.kind is ledger.SpendKind.POSSIBLE] == [first.uncertain[0]]
        assert not any(e.name == "fox-again" for e in book.entries)  # reuse cost nothing
        assert all(not e.priced_when_read for e in book.entries)
        rows = [dict(r) for r in store.db.query("select kind, creates, amount from spend_by_day order by kind")]
        assert rows == [{"kind": "accepted", "creates": 4, "amount": "1.96"}, {"kind": "possible", "creates": 1, "amount": "0.49"}]
    finally:
        store.close()

    out = cli("spend", path, "--json")
    data = json.loads(out.output)
    assert out.exit_code == 0 and data["spent"] == {"creates": 4, "totals": {"USD": "1.96"}, "unpriced": 0}
    assert data["possible"]["creates"] == 1
    text = cli("spend", path).output
    assert "Spent: 1.96 USD (4 accepted creates)" in text and "Possibly spent: 0.49 USD (1 uncertain create" in text
    assert "(4 accepted creates), of which renders that then failed: 0.98 USD (2; MiniMax may not charge them)" in text
    assert "No spend recorded" in cli("spend", path, "--since", "2999-01-01").output
    assert cli("spend", path, "--since", "yesterday").exit_code == 2


def test_a_create_cut_off_by_a_crash_is_possible_spend_at_the_quoted_price(tmp_path):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox"}))
    ws = project.load([path])
    job = ws.manifests[0].jobs[0]
    plan = project.plan(ws)
    cost = costing.Budget.for_workspace(ws.manifests, facts.HOST_MAINLAND).cost(plan)
    store = Store(ws.state_dir)
    try:
        store.record_seen(job.key, job.display_request(), model="MiniMax-Hailuo-02", mode="t2v", duration=None, resolution=None, prompt="A fox", name="fox", manifest=str(job.manifest))
        assert ledger.write_quotes(store, cost.quotes(), cost.region) == 1
        store.record_intent(job.key, name="fox")
        assert ledger.ledger(store).entries == ()  # an intent is not spend
    finally:
        store.close()
    store = Store(ws.state_dir)  # the process died mid-create; the next run recovers
    try:
        store.mark_interrupted_submissions()
        book = ledger.ledger(store)
        assert [(e.kind, e.amount, e.currency) for e in book.entries] == [(ledger.SpendKind.POSSIBLE, Decimal("2.00"), "CNY")]
        store.record_intent(job.key, name="fox")
        store.record_submitted(job.key, "task-1", name="fox")
        book = ledger.ledger(store, manifests=[path])
        assert (book.spent.creates, book.possible.creates) == (1, 1)
        assert ledger.ledger(store, manifests=[tmp_path / "other.toml"]).entries == ()
        store.forget([job.key])  # gc forgets the render, not what it cost
        assert len(ledger.ledger(store).entries) == 2
        assert "spent about 2.00 CNY in this run (1 create accepted); possibly 2.00 CNY more (1 uncertain)" in ledger.run_spend_line(book)
    finally:
        store.close()


def test_an_entry_with_no_quote_is_priced_when_read_and_says_so(tmp_path, sim):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox"}))
    ws = project.load([path])
    with Client(TEST_KEY, sim.base_url) as client:
        project.run(ws, client, FAST)  # no budget: nothing quoted
    store = Store(ws.state_dir, readonly=True)
    try:
        assert [e.amount for e in ledger.read_entries(store)] == [None]
        entries = ledger.read_entries(store, table=prices.load_table(), region=prices.Region.GLOBAL)
        assert [(e.amount, e.priced_when_read) for e in entries] == [(Decimal("0.28"), True)]
    finally:
        store.close()


def test_the_ledger_migration_runs_on_a_database_of_the_first_schema(tmp_path):
    sql = (Path(__file__).parent / "data" / "state_m001.sql").read_text()
    folder = tmp_path / "state"
    folder.mkdir()
    conn = sqlite3.connect(folder / "state.db")
    conn.executescript(sql)
    conn.close()
    store = Store(folder)
    try:
        assert {"spend", "price_quotes"} <= set(store.db.table_names()) and "spend_by_day" in store.db.view_names()
        # the first schema's running job was accepted before the ledger existed: an entry, priced when read
        entries = ledger.read_entries(store, table=prices.load_table(), region=prices.Region.GLOBAL)
        assert [(e.kind, e.name, e.priced_when_read) for e in entries] == [(ledger.SpendKind.ACCEPTED, "fox", True)]
        record = store.all_renders()[0]
        assert record.state is RenderState.RUNNING
        store.record_failed(record.key, ErrorInfo("Fail"))
        store.record_intent(record.key)
        store.record_uncertain(record.key, ErrorInfo("lost"))
        assert [e.kind for e in ledger.read_entries(store)] == [ledger.SpendKind.ACCEPTED, ledger.SpendKind.POSSIBLE]
    finally:
        store.close()


def test_a_session_checks_its_budget_for_every_plan_with_each_manifests_prices_as_loaded_now(tmp_path):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox"}))
    budget = costing.Budget.for_workspace([], facts.HOST_GLOBAL, max_cost="0.28")  # as watch starts: no manifest yet
    with Session(tmp_path / "state", None, FAST, budget=budget) as session:
        ws = project.load([path])
        assert session.admit(session.plan(ws.manifests)) is None
        write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))  # an edit: 0.56 USD
        ws = project.load([path])
        refusal = session.admit(session.plan(ws.manifests, first=False))
        assert refusal is not None and refusal.kind is EventKind.REFUSED
        assert refusal.reason.startswith("the plan would cost 0.56 USD, more than --max-cost 0.28 USD; nothing was sent")
        ws.manifests[0].prices = {"global": [{"model": "MiniMax-Hailuo-02", "resolution": "768P", "duration": 6, "price": "0.14"}]}
        assert session.admit(session.plan(ws.manifests, first=False)) is None  # its [prices] as loaded now: 0.28 USD
        quoted = {r["key"]: r["amount"] for r in session.store.db.query("select key, amount from price_quotes")}
        assert sorted(quoted.values()) == ["0.14", "0.14"]
