"""Money through the real CLI: plan prints and
--json carries prices, --max-cost refuses with exit 2 and no call, the run summary says what was spent."""

from __future__ import annotations

import json
import signal
from decimal import Decimal

import pytest

from .helpers import api_calls, cli, t2v_manifest, write
from .test_report import _open
from .test_report import browser as _browser  # noqa: F401 - a fixture: headless Chromium


def test_plan_shows_prices_and_json_carries_them(tmp_path, sim_env):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    out = cli("plan", path)
    assert out.exit_code == 0
    assert "    2 x MiniMax-Hailuo-02 t2v 768P 6s  0.56 USD (0.28 each)" in out.output
    assert "Total: 0.56 USD (global region; shipped prices of" in out.output
    data = json.loads(cli("plan", path, "--json").output)
    assert data["summary"]["cost"]["total"] == "0.56" and data["summary"]["cost"]["currency"] == "USD"
    assert [j["cost"]["price"] for j in data["jobs"]] == ["0.28", "0.28"]
    mainland = json.loads(cli("plan", path, "--json", "--api-host", "https://api.minimaxi.com").output)
    assert mainland["summary"]["cost"]["total"] == "4.00" and mainland["summary"]["cost"]["currency"] == "CNY"


def test_max_cost_below_the_estimate_exits_2_with_no_call_and_above_it_runs(tmp_path, sim_env):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    refused = cli("run", path, "--max-cost", "0.55", "--poll-interval", "0", "--rpm", "60000")
    assert refused.exit_code == 2 and "more than --max-cost 0.55 USD" in refused.output
    assert api_calls(sim_env) == 0
    ran = cli("run", path, "--max-cost", "0.56", "--poll-interval", "0", "--rpm", "60000")
    assert ran.exit_code == 0 and sim_env.sim.calls["create"] == 2
    assert "spent about 0.56 USD in this run (2 creates accepted)" in ran.output
    spend = json.loads(cli("spend", path, "--json").output)
    assert spend["spent"] == {"creates": 2, "totals": {"USD": "0.56"}, "unpriced": 0}


def test_max_cost_in_another_currency_than_the_regions_is_refused_with_no_call(tmp_path, sim_env):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    refused = cli("run", path, "--max-cost", "2 CNY", "--poll-interval", "0", "--rpm", "60000")  # 0.56 USD is about 4 CNY
    assert refused.exit_code == 2 and "CNY" in refused.output and "USD" in refused.output, refused.output
    assert api_calls(sim_env) == 0
    ran = cli("run", path, "--max-cost", "0.56 usd", "--poll-interval", "0", "--rpm", "60000")
    assert ran.exit_code == 0 and sim_env.sim.calls["create"] == 2


def test_a_plan_over_the_balance_says_so_before_it_starts(tmp_path, sim_env):
    sim_env.sim.config.balance = "0.30"
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
    out = cli("run", path, "--poll-interval", "0", "--rpm", "60000")
    assert "warning: this plan costs about 0.56 USD, more than the account's available balance of 0.30 USD" in out.output
    sim_env.sim.config.balance = None
    write(tmp_path, "shots.toml", t2v_manifest({"bear": "A bear"}))
    out = cli("run", path, "--poll-interval", "0", "--rpm", "60000")
    assert out.exit_code == 0 and "available balance" not in out.output and sim_env.sim.calls["query_balance"] == 2


def _manifest_prices() -> bool:
    from vidbatch.manifest.model import Manifest

    return "prices" in Manifest.__dataclass_fields__


@pytest.mark.skipif(not _manifest_prices(), reason="needs the manifest [prices] patch (merge)")
def test_a_manifest_prices_table_prices_its_jobs_and_a_bad_one_is_refused(tmp_path, sim_env):
    table = '[[prices.global]]\nmodel = "T2V-01"\nduration = 6\nprice = "PRICE"\n\n'
    text = t2v_manifest({"fox": "A fox"}, extra_defaults='model = "T2V-01"\n').replace('model = "MiniMax-Hailuo-02"\n', "")
    path = write(tmp_path, "shots.toml", text + "\n" + table.replace("PRICE", "0.20"))
    out = cli("plan", path)
    assert out.exit_code == 0 and "1 x T2V-01 t2v 720P 6s  0.20 USD" in out.output and "prices from shots.toml" in out.output
    write(tmp_path, "shots.toml", text + "\n" + table.replace("PRICE", "-1"))
    bad = cli("plan", path)
    assert bad.exit_code == 2 and "prices.global[0].price: must not be negative" in bad.output


def test_sim_serves_the_balance_and_region_it_is_given(tmp_path, monkeypatch):
    from vidbatch.client import Client
    from vidbatch.prices import Region

    from .conftest import TEST_KEY
    from .helpers import cli_subprocess

    proc = cli_subprocess(["sim", "--port", "0", "--key", TEST_KEY, "--balance", "1.50", "--region", "mainland"])
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        lines = []
        while not lines or "Ctrl-C stops" not in lines[-1]:
            lines.append(proc.stderr.readline())
            assert lines[-1], lines
        assert "mainland region (CNY), balance 1.50 CNY: price runs with `vidbatch run --region mainland`\n" in lines
        with Client(TEST_KEY, url) as client:
            balance = client.query_balance(Region.MAINLAND)
        assert balance is not None and (balance.available, balance.currency) == (Decimal("1.50"), "CNY")

        monkeypatch.setenv("MINIMAX_API_HOST", url)
        monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)
        path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox"}))
        out = cli("run", path, "--region", "mainland", "--poll-interval", "0", "--rpm", "60000", "--max-cost", "2")
        assert out.exit_code == 0, out.output
        assert "this plan costs about 2.00 CNY, more than the account's available balance of 1.50 CNY (short by 0.50 CNY)" in out.output
        assert "spent about 2.00 CNY in this run (1 create accepted)" in out.output
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err


def test_sim_without_a_balance_answers_none_and_a_bad_amount_is_refused():
    from vidbatch.client import Client

    from .conftest import TEST_KEY
    from .helpers import cli_subprocess

    proc = cli_subprocess(["sim", "--port", "0", "--key", TEST_KEY, "--balance", "none"])
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        with Client(TEST_KEY, url) as client:
            assert client.query_balance() is None
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "global region (USD), balance not served" in err
    bad = cli("sim", "--port", "0", "--balance", "lots")
    assert bad.exit_code == 2 and "--balance" in bad.output and "must be an amount such as 12.50, or none; not 'lots'" in bad.output


# --- watch: every plan is bounded by --max-cost, as run's is -------------------------------------


def test_watch_refuses_every_plan_over_max_cost_with_no_call_and_goes_on(tmp_path):
    from vidbatch.sim import SimConfig, running_simulator

    from .conftest import TEST_KEY
    from .test_watch import Watch, atomic_write, outputs

    folder = tmp_path / "shots"
    folder.mkdir()
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        w = Watch(folder, server, "--max-cost", "0.56")
        try:
            w.wait_for(lambda: w.of("watching"), "the watcher to start")
            (folder / "shots.toml").write_text(t2v_manifest({"fox": "A fox", "owl": "An owl", "bear": "A bear"}))
            refused = w.wait_for(lambda: w.of("refused", "shots.toml"), "the plan to be refused")
            assert "shots.toml: not started: the plan would cost 0.84 USD, more than --max-cost 0.56 USD; nothing was sent" in refused[0]["message"]
            assert api_calls(server) == 0  # not even the balance

            atomic_write(folder / "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl"}))
            w.settled_after_plan("shots.toml", 2)
            assert server.sim.calls["create"] == 2 and sorted(outputs(folder)) == ["fox", "owl"]

            calls = api_calls(server)  # an edit's plan over the cap: refused, no call at all
            atomic_write(folder / "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl", "bear": "A bear", "wolf": "A wolf", "lynx": "A lynx"}))
            w.wait_for(lambda: len(w.of("refused", "shots.toml")) == 2, "the edit's plan to be refused")
            assert "the plan would cost 0.84 USD, more than --max-cost 0.56 USD" in w.of("refused", "shots.toml")[1]["message"]
            assert api_calls(server) == calls

            atomic_write(folder / "shots.toml", t2v_manifest({"fox": "A fox", "owl": "An owl", "bear": "A bear"}))
            w.settled_after_plan("shots.toml", 4)  # 0.28 more: under the cap, it goes
            assert server.sim.calls["create"] == 3
            assert w.interrupt() == 130
        finally:
            w.close()
    finish = w.of("finish")[-1]
    assert finish["spend"]["this_run"]["spent"] == {"creates": 3, "totals": {"USD": "0.84"}, "unpriced": 0}
    assert "vidbatch: spent about 0.84 USD in this session (3 creates accepted); 0.84 USD so far for these manifests" in w.stderr


# --- spend after runs with failures, reuse and an uncertain create: finish, status, report -------


def test_spend_shows_in_the_finish_event_status_and_report_and_adds_up(tmp_path, sim_env):
    import html as htmllib

    from vidbatch import project
    from vidbatch.report import build_report
    from vidbatch.state import Store

    from .helpers import json_events

    prompts = {"fox": "A fox", "owl": "An owl", "bad": "A sim-fail shot", "lost": "A lost answer"}
    path = write(tmp_path, "shots.toml", t2v_manifest(prompts, extra_defaults='resolution = "1080P"\n'))
    fast = ["--poll-interval", "0", "--rpm", "60000", "--concurrency", "1", "--json"]
    sim_env.sim.inject("create", "drop_after_create", after=3)  # the 4th create: task made, answer lost
    first = cli("run", path, *fast)
    assert first.exit_code == 1 and sim_env.sim.calls["create"] == 4
    spend = json_events(first.output)[-1]["spend"]
    assert spend["this_run"] == {
        "spent": {"creates": 3, "totals": {"USD": "1.47"}, "unpriced": 0},
        "billed": {"creates": 0, "totals": {}},  # v1 reports no bill: every amount is an estimate
        "estimated": {"creates": 3, "totals": {"USD": "1.47"}, "unpriced": 0},
        "possible": {"creates": 1, "totals": {"USD": "0.49"}, "unpriced": 0},
        "failed": {"creates": 1, "totals": {"USD": "0.49"}, "unpriced": 0},
    }
    assert spend["so_far"] == spend["this_run"]

    # Again, with a job of fox's request (reuse: free) and the failed one retried (fails again).
    write(tmp_path, "shots.toml", t2v_manifest({**prompts, "fox-again": "A fox"}, extra_defaults='resolution = "1080P"\n'))
    second = cli("run", path, *fast, "--retry-failed", "--report", tmp_path / "run.html")
    assert sim_env.sim.calls["create"] == 5
    events = json_events(second.output)
    assert [e["job"] for e in events if e["event"] == "reused"] == ["fox-again"]
    spend = events[-1]["spend"]
    assert spend["this_run"]["spent"] == {"creates": 1, "totals": {"USD": "0.49"}, "unpriced": 0}
    assert spend["this_run"]["possible"]["creates"] == 0 and spend["this_run"]["failed"]["totals"] == {"USD": "0.49"}
    so_far = {"spent": {"creates": 4, "totals": {"USD": "1.96"}, "unpriced": 0}, "billed": {"creates": 0, "totals": {}}, "estimated": {"creates": 4, "totals": {"USD": "1.96"}, "unpriced": 0}, "possible": {"creates": 1, "totals": {"USD": "0.49"}, "unpriced": 0}, "failed": {"creates": 2, "totals": {"USD": "0.98"}, "unpriced": 0}}
    assert spend["so_far"] == so_far
    assert "spent about 0.49 USD in this run (1 create accepted, 0.49 USD of it on renders that then failed); 1.96 USD so far for these manifests" in second.output

    status = json.loads(cli("status", path, "--json").output)
    assert status["spend"] == so_far
    cost = {j["name"]: j["cost"] for j in status["jobs"]}
    assert cost["bad"] == {"creates": 2, "totals": {"USD": "0.98"}, "unpriced": 0}  # each accepted try
    assert cost["fox"] == cost["fox-again"] == {"creates": 1, "totals": {"USD": "0.49"}, "unpriced": 0}  # one render, shared
    uncertain = next(j for j in status["jobs"] if j["state"] == "uncertain")
    assert uncertain["cost"] is None  # possible spend only, shown apart
    text = cli("status", path).output
    assert "Spent: 1.96 USD (4 accepted creates), of which renders that then failed: 0.98 USD (2; MiniMax may not charge them)" in text
    assert "Possibly spent: 0.49 USD (1 uncertain create: the answer was lost, MiniMax may have the task)" in text

    ws = project.load([path])
    store = Store(ws.state_dir, readonly=True)
    try:
        report = build_report(ws, store, tmp_path / "report.html")
    finally:
        store.close()
    assert report.summary.spend is not None
    assert (report.summary.spend.spent, report.summary.spend.failed, report.summary.spend.possible, report.summary.spend.this_run) == ("1.96 USD", "0.98 USD", "0.49 USD (1)", None)
    expected = {"fox": "0.49 USD", "owl": "0.49 USD", "bad": "0.98 USD", "lost": "0.49 USD", "fox-again": "0.49 USD"}
    expected[uncertain["name"]] = None
    assert {j.name: j.cost for j in report.jobs} == expected
    assert cli("report", path, "-o", tmp_path / "report.html").exit_code == 0
    page = htmllib.unescape((tmp_path / "report.html").read_text())
    assert "1.96 USD</span><span class=\"lbl\">spent so far · 0.98 USD on failed renders · 0.49 USD (1) maybe</span>" in page
    assert page.count('<dd class="cost"') == 5 and '<dd class="cost" title="what this render cost: its accepted creates, every try, at the price quoted when each run started">0.98 USD</dd>' in page
    run_page = htmllib.unescape((tmp_path / "run.html").read_text())  # the run's --report: what this run spent
    assert "spent so far · 0.49 USD this run · 0.98 USD on failed renders" in run_page


@pytest.mark.browser
def test_the_report_shows_the_spend_and_each_cards_cost_in_chromium(tmp_path, sim_env, request):
    path = write(tmp_path, "shots.toml", t2v_manifest({"fox": "A fox", "bad": "A sim-fail shot"}))
    assert cli("run", path, "--poll-interval", "0", "--rpm", "60000").exit_code == 1
    out = tmp_path / "report.html"
    assert cli("report", path, "-o", out).exit_code == 0
    page, errors = _open(request.getfixturevalue("_browser"), out)
    spend = page.locator(".stat.spend")
    assert spend.is_visible() and " ".join(spend.inner_text().split()) == "0.56 USD spent so far · 0.28 USD on failed renders"
    costs = page.eval_on_selector_all(".card", "cs => cs.map(c => [c.querySelector('h3').textContent.trim(), c.querySelector('dd.cost').textContent.trim()])")
    assert sorted(costs) == [["bad", "0.28 USD"], ["fox", "0.28 USD"]]
    assert page.locator(".card dd.cost").first.is_visible() and errors == []


@pytest.mark.parametrize(("host", "column", "currency"), [("https://api.minimax.io", 0, "USD"), ("https://api.minimaxi.com", 1, "CNY")])
def test_plan_json_prices_every_render_the_facts_allow_by_the_hosts_region(tmp_path, host, column, currency):
    from .test_money import every_render_manifest
    from .test_prices import CONTRACT_PER_SECOND, CONTRACT_PER_VIDEO, UNPUBLISHED

    out = cli("plan", every_render_manifest(tmp_path), "--json", "--api-host", host)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    total = Decimal(0)
    for job in data["jobs"]:
        cost = job["cost"]
        if job["model"] in UNPUBLISHED:
            assert cost["priced"] is False and cost["counts"] == "bill", job
            continue
        r = cost["render"]
        if (r["model"], r["resolution"]) in CONTRACT_PER_SECOND:  # MiniMax-H3: per output second
            want = Decimal(CONTRACT_PER_SECOND[(r["model"], r["resolution"])][column]) * r["duration"]
        else:
            want = Decimal(CONTRACT_PER_VIDEO[(r["model"], r["resolution"], r["duration"])][column])
        assert (Decimal(cost["price"]), cost["currency"]) == (want, currency), job
        total += want
    summary = data["summary"]["cost"]
    assert (Decimal(summary["total"]), summary["currency"]) == (total, currency)
    assert summary["unpriced"] == sum(1 for j in data["jobs"] if j["model"] in UNPUBLISHED) > 0
