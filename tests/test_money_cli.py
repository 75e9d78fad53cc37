"""Money through the real CLI: plan prints and
--json carries prices, --max-cost refuses with exit 2 and no call, the run summary says what was spent."""

from __future__ import annotations

import json
import signal
from decimal import Decimal

import pytest

from .helpers import api_calls, cli, t2v_manifest, write


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
        _, err = proc.communicate(timeout=10)
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
        _, err = proc.communicate(timeout=10)
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
