"""The API key from a config file: used when the environment has none, refused when others can
read it, and never shown."""

from __future__ import annotations

import os

import pytest

from vidbatch import config
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


def test_no_key_anywhere_says_both_ways_to_set_one(tmp_path):
    manifest = tmp_path / "m.toml"
    manifest.write_text(t2v_manifest({"a": "A quiet pond"}))
    result = cli(["run", manifest])
    assert result.exit_code == 2
    assert "export MINIMAX_API_KEY=" in result.output and "config.toml (chmod 600)" in result.output and "--sim" in result.output
