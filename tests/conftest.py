"""Shared fixtures.

Every test runs isolated: the environment variables vidbatch reads are cleared and HOME points
at a temporary folder, so no real key, host or state can leak in. Integration tests get a real
simulator on a free loopback port (``sim``), serving real HTTP.
"""

from __future__ import annotations

import signal

import pytest

# The tests play a user at a terminal, whose Ctrl-C interrupts. Started from a background job of
# a non-interactive shell, this process (and every `vidbatch` it starts) would inherit SIGINT
# ignored, which vidbatch rightly leaves alone, and the Ctrl-C tests would fail or hang. Python's
# own handler here gives the children SIGINT's default back at exec, as a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ENV_VARS = ("MINIMAX_API_KEY", "MINIMAX_API_HOST", "VIDBATCH_STATE", "VIDBATCH_DEBUG", "VIDBATCH_CONFIG")

#: The key tests hand to the client; it must never appear in any output, log, file or message.
TEST_KEY = "sk-test-SECRET-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    yield


@pytest.fixture
def sim():
    """A simulator on a free loopback port, with zero latency; ``sim.sim`` is its in-process state."""
    from vidbatch.sim import SimConfig, running_simulator

    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        yield server


@pytest.fixture
def sim_env(sim, monkeypatch):
    """Environment pointing vidbatch at ``sim`` with the test key."""
    monkeypatch.setenv("MINIMAX_API_HOST", sim.base_url)
    monkeypatch.setenv("MINIMAX_API_KEY", TEST_KEY)
    return sim
