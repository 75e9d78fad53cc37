"""The API key from a config file: used when the environment has none, refused when others can
read it, and never shown."""

from __future__ import annotations

import json
import os
import socket
import tomllib
from typing import Any

import pytest

from vidbatch import config, facts
from vidbatch.errors import ConfigError

from .conftest import TEST_KEY
from .helpers import cli, t2v_manifest


def write_config(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_run_takes_the_key_and_host_from_a_private_config_file(tmp_path, sim, monkeypatch):
    cfg = write_config(tmp_path / "home" / ".config" / "vidbatch" / "config.toml", f'api_key = "{TEST_KEY}"\napi_host = "{sim.base_url}"\n')
    assert config.config_path() == cfg
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    result = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000"])
    assert result.exit_code == 0, result.output
    assert len(sim.sim.tasks) == 1
    assert TEST_KEY not in result.output


def test_the_environment_wins_over_the_file(tmp_path, monkeypatch):
    write_config(tmp_path / "c.toml", 'api_key = "from-file"\napi_host = "https://file.example"\n')
    monkeypatch.setenv("VIDBATCH_CONFIG", str(tmp_path / "c.toml"))
    monkeypatch.setenv("MINIMAX_API_KEY", "from-env")
    found = config.credentials()
    assert (found.key, found.host, found.key_source) == ("from-env", "https://file.example", "MINIMAX_API_KEY")
    assert config.credentials("https://option.example").host == "https://option.example"
    assert "from-env" not in repr(found)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_file_others_can_read_is_refused_with_the_fix(tmp_path, monkeypatch, mode):
    cfg = write_config(tmp_path / "c.toml", f'api_key = "{TEST_KEY}"\n', mode)
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=f"chmod 600 {cfg}") as err:
        config.credentials()
    assert TEST_KEY not in str(err.value)
    result = cli(["run", "--sim", "--help"])  # --sim needs no key: unaffected
    assert result.exit_code == 0


@pytest.mark.parametrize(
    "text", ['api_host = "https://file.example"\n', '[[prices.global]]\nmodel = "T2V-01"\nduration = 6\nprice = "0.20"\n', 'api_key = ""\n']
)
def test_a_file_without_a_key_is_read_whatever_others_can_read(tmp_path, monkeypatch, text):
    """Only a key is a secret: a host or a [prices] table readable by all was refused as a file
    that "holds an API key", by plan and run --sim too, which need no key."""
    cfg = write_config(tmp_path / "c.toml", text, 0o644)
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    assert config.read_config() == tomllib.loads(text)
    for args in (["plan", manifest], ["run", "--sim", manifest, "--poll-interval", "0"]):
        result = cli(args)
        assert result.exit_code == 0, result.output
        assert "holds an API key" not in result.output
    if "api_host" in text:
        assert config.credentials().host == "https://file.example"


@pytest.mark.parametrize("text", ['api_host = "https://file.example"\n', f'api_key = "{TEST_KEY}"\n'])
def test_a_file_others_can_write_is_refused_key_or_not(tmp_path, monkeypatch, text):
    """Whoever can write the file chooses the host a key is sent to (the environment's key too)."""
    cfg = write_config(tmp_path / "c.toml", text, 0o620)
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    monkeypatch.setenv("MINIMAX_API_KEY", "from-env")
    with pytest.raises(ConfigError, match=f"can be written by others \\(mode 0620\\), who could send your API key to any host; run `chmod 600 {cfg}`"):
        config.credentials()
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    result = cli(["plan", manifest])
    assert result.exit_code == 2 and "can be written by others" in result.output


def test_bad_config_files_get_clear_messages(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="does not exist"):
        config.credentials()
    write_config(cfg, "api_key = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.credentials()
    write_config(cfg, 'apikey = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting apikey; settings are api_key, api_host"):
        config.credentials()
    write_config(cfg, "api_key = 5\n")
    with pytest.raises(ConfigError, match="api_key must be a string"):
        config.credentials()


def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path, monkeypatch):
    """Editors on Windows save UTF-8 with a BOM; manifests read it, the config file was refused as
    "not valid TOML: Invalid statement (at line 1, column 1)"."""
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\xef\xbb\xbf" + f'api_key = "{TEST_KEY}"\napi_host = "https://file.example"\n'.encode())
    os.chmod(cfg, 0o600)
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    found = config.credentials()
    assert (found.key, found.host, found.key_source) == (TEST_KEY, "https://file.example", str(cfg))


def test_no_key_anywhere_says_both_ways_to_set_one(tmp_path):
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    result = cli(["run", manifest])
    assert result.exit_code == 2
    assert "export MINIMAX_API_KEY=" in result.output and "config.toml (chmod 600)" in result.output and "--sim" in result.output


def test_a_key_with_a_space_in_the_config_file_is_blamed_on_that_file(tmp_path, monkeypatch, sim):
    """A key pasted with a space ("Bearer sk-..." or two halves) used to be refused with "check
    MINIMAX_API_KEY" although that variable was not set: the message sent people to the wrong place."""
    cfg = write_config(tmp_path / "c.toml", f'api_key = "Bearer {TEST_KEY}"\napi_host = "{sim.base_url}"\n')
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    result = cli(["run", manifest, "--force", "a"])
    assert result.exit_code == 2
    assert f"the API key in {cfg} contains a space" in result.output
    assert "MINIMAX_API_KEY" not in result.output.split("error:")[-1] and TEST_KEY not in result.output
    assert len(sim.sim.tasks) == 0


def test_a_refused_key_from_the_config_file_is_looked_for_there(tmp_path, monkeypatch, sim):
    """The hints of a refused key said "check MINIMAX_API_KEY" even when the key came from the
    config file and that variable was not set."""
    cfg = write_config(tmp_path / "c.toml", f'api_key = "{TEST_KEY}"\napi_host = "{sim.base_url}"\n')
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    sim.sim.inject("create", "code:1004")
    result = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000"])
    assert result.exit_code == 3
    assert f"hint: check api_key in {cfg}" in result.output and "MINIMAX_API_KEY" not in result.output
    monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)  # the variable, when it is the source
    sim.sim.inject("create", "code:1004")
    result = cli(["run", manifest, "--poll-interval", "0", "--rpm", "60000"])
    assert result.exit_code == 3 and "hint: check MINIMAX_API_KEY" in result.output

# --- where the host came from, and a host that is wrong -------------------------------------------


def test_the_host_source_is_named(tmp_path, monkeypatch):
    cfg = write_config(tmp_path / "c.toml", 'api_key = "k"\napi_host = "https://file.example/"\n')
    monkeypatch.setenv("VIDBATCH_CONFIG", str(cfg))
    assert config.credentials().host_source == f"the config file {cfg}"
    assert config.credentials().host == "https://file.example"
    monkeypatch.setenv("MINIMAX_API_HOST", "https://env.example")
    assert config.credentials().host_source == "the MINIMAX_API_HOST environment variable"
    assert config.credentials("https://option.example").host_source == "--api-host"
    assert config.credentials("https://lib.example", host_given_by="a test").host_source == "a test"
    cfg.write_text('api_key = "k"\n')
    monkeypatch.delenv("MINIMAX_API_HOST")
    found = config.credentials()
    assert (found.host, found.host_source) == (facts.DEFAULT_HOST, "the default")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_against_a_closed_port_stops_at_once_naming_the_host(tmp_path, monkeypatch):
    """Issue 10 item 4: a typo in the host used to be retried for over a minute per job and end as
    "unfinished" with raw NameResolutionError text. Now: exit 3 at once, host and source named.
    "At once" is counted, not timed: the client sleeps before no retry and the run waits out no
    timeout of a second or more (a loaded machine cannot make it fail)."""
    from vidbatch import client as client_mod, runner

    slept: list[float] = []
    real_init = client_mod.Client.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        real_init(self, *args, **{**kw, "sleep": slept.append})

    waited: list[float] = []
    real_wait = runner.SystemClock.wait

    def wait(self: Any, until_woken: Any, seconds: float) -> bool:
        woken = real_wait(self, until_woken, seconds)
        if not woken:
            waited.append(seconds)
        return woken

    monkeypatch.setattr(client_mod.Client, "__init__", init)
    monkeypatch.setattr(runner.SystemClock, "wait", wait)
    monkeypatch.chdir(tmp_path)
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond", "b": "A loud pond"}))
    host = f"http://127.0.0.1:{_closed_port()}"
    result = cli(["run", manifest], env={"MINIMAX_API_HOST": host, "MINIMAX_API_KEY": TEST_KEY})
    text = result.output
    assert result.exit_code == 3, text
    assert slept == [] and not [s for s in waited if s >= 1], (slept, waited)
    assert f"cannot reach the API host {host} (from the MINIMAX_API_HOST environment variable)" in text
    assert "fix or unset MINIMAX_API_HOST" in text
    assert "Traceback" not in text and "NameResolutionError" not in text and "NewConnectionError" not in text
    assert TEST_KEY not in text
    assert not (tmp_path / "renders").exists() or not any((tmp_path / "renders").iterdir())
    status = json.loads(cli(["status", manifest, "--json"]).output)
    assert all(j["task_id"] is None for j in status["jobs"]), "nothing created"


def test_run_against_something_that_is_not_the_api_stops_with_exit_3(tmp_path, sim, monkeypatch):
    """A 404 (or 501, or a redirect) from the host: whatever answered is not MiniMax's API."""
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)
    result = cli(["run", manifest, "--api-host", sim.base_url + "/not-the-api"])
    assert result.exit_code == 3, result.output
    assert "does not answer like MiniMax's API" in result.output and "fix --api-host" in result.output
    assert "(from --api-host)" in result.output
    assert len(sim.sim.tasks) == 0
