"""The Python API: what ``import vidbatch`` offers, and the calls the command line makes.

A small surface, the same one the CLI uses (a command parses its options, makes these calls and
renders the result)::

    import vidbatch

    ws = vidbatch.load(["shots.toml"], sim=True)     # manifests + their state folder
    print(ws.plan().summary())                        # what a run would do; writes nothing
    with vidbatch.connect(ws) as client:              # MiniMax, or for a sim workspace the simulator
        result = ws.run(client, on_event=lambda e: print(e.kind, e.job or "", e.message))
    print(result.exit_code, result.failed)
    for job in ws.status():                           # every job's recorded state
        print(job.name, job.state, job.output)

    with vidbatch.simulator() as sim:                 # a simulator of the API on a loopback port
        print(sim.url)                                # point any client (or another process) here
        with sim.client() as client:
            ws.run(client)

Errors are :class:`VidbatchError` subclasses carrying ``exit_code`` (manifest problems,
:class:`~vidbatch.errors.ManifestError`, list every problem with its file, line, job and field).
``on_event`` receives :class:`RunEvent` values (``kind`` is an :class:`EventKind`); the runner
calls it on its scheduler's thread (the one that called ``run``; under ``watch``, the session's
thread), so keep it quick: the scheduler does nothing else meanwhile. The library never prints.

Importing :mod:`vidbatch` is cheap: these names load on first use.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from .errors import VidbatchError
from .events import EventKind
from .plan import Plan
from .project import JobStatus, Workspace, load
from .runner import RunEvent, RunOptions, RunResult

if TYPE_CHECKING:
    from .client import Client
    from .sim import SimServer

__all__ = [
    "EventKind",
    "JobStatus",
    "Plan",
    "RunEvent",
    "RunOptions",
    "RunResult",
    "Simulator",
    "VidbatchError",
    "Workspace",
    "connect",
    "load",
    "simulator",
]


@dataclass
class Simulator:
    """A running simulator of MiniMax's video API (see :func:`simulator`)."""

    #: its base URL, e.g. ``http://127.0.0.1:51234``: pass it as ``--api-host`` or MINIMAX_API_HOST
    url: str
    #: the API key it accepts (not a MiniMax key; it is worth nothing elsewhere)
    key: str
    #: where it keeps its tasks and files across processes; None: in memory, gone at exit
    data_dir: Path | None
    server: "SimServer"
    #: with ``https=True``: the CA file a client must trust (REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS)
    ca_file: Path | None = None

    def client(self) -> "Client":
        """A client of this simulator (a context manager; close it when done); over HTTPS it
        trusts the simulator's CA and nothing else."""
        from .client import Client, new_session

        session = new_session(ca_file=self.ca_file)
        return Client(self.key, self.url, host_source="the --sim simulator", session=session)


@contextlib.contextmanager
def simulator(
    data_dir: str | Path | None = None, *, latency: float = 0.0, https: bool = False
) -> Iterator[Simulator]:
    """Run the bundled simulator of the API on a free loopback port for the ``with`` block.

    ``data_dir`` keeps its tasks and files across blocks and processes (as MiniMax keeps an
    account's: a run stopped half way resumes its tasks, a deleted output is fetched again);
    without it they live in memory. ``latency`` is the seconds each simulated render takes.
    ``https`` serves TLS with a certificate from a CA the simulator makes (``sim.ca_file``; kept
    in ``data_dir`` when given). Nothing is paid and no key is needed."""
    from .sim import SimConfig, running_simulator

    folder = Path(data_dir).expanduser() if data_dir is not None else None
    config = SimConfig(latency=latency, data_dir=folder, v2_price=sim_v2_price(SimConfig.region))
    with running_simulator(config, https=https) as server:
        yield Simulator(server.base_url, server.key, folder, server, server.ca_file)


def sim_v2_price(region: str) -> Callable[[Mapping[str, Any]], str | None]:
    """What the simulator charges a succeeded v2 render in ``region`` (``SimConfig.v2_price``):
    its price from the price table (shipped prices under the config file's), so the simulated
    balance falls as MiniMax's would; None for a render the table does not price."""
    from . import prices

    table, where = prices.load_table(), prices.Region(region)

    def price(render: Mapping[str, Any]) -> str | None:
        found = table.price_of(render, where)
        return str(found.amount) if isinstance(found, prices.Price) else None

    return price


@contextlib.contextmanager
def connect(ws: Workspace | None = None, *, api_host: str | None = None, sim_latency: float = 0.0, lazy: bool = False) -> Iterator["Client"]:
    """The client a run of ``ws`` talks to, for the ``with`` block.

    For a simulated workspace (``load(..., sim=True)``, the CLI's ``--sim``) that is a simulator
    whose tasks and files live in the state folder (``<state>/server``), so runs resume across
    processes as against MiniMax. Otherwise MiniMax, with the key from MINIMAX_API_KEY or the
    config file and the host from ``api_host``, MINIMAX_API_HOST or the config file
    (:class:`~vidbatch.errors.CredentialsError` when there is no key).

    ``lazy``: the key and host are checked now, but the client (the HTTP stack, or the
    simulator) is made at its first call, so a run with nothing to do costs neither (issue 15)."""
    if lazy:
        with contextlib.ExitStack() as stack:
            if ws is not None and ws.sim:
                host = "http://127.0.0.1"  # the simulator's, whatever port it gets
            else:
                from . import config

                found = config.credentials(api_host)
                if not found.key:
                    from .errors import ConfigError

                    raise ConfigError(config.missing_key_message())
                host = found.host
            yield _LazyClient(lambda: stack.enter_context(connect(ws, api_host=api_host, sim_latency=sim_latency)), host)  # type: ignore[misc]
        return
    from .client import Client

    if ws is not None and ws.sim:
        with simulator(ws.state_dir / "server", latency=sim_latency) as sim:
            with sim.client() as client:
                yield client
        return
    with Client.from_env(host=api_host) as client:
        yield client



class _LazyClient:
    """A client made at its first use (see :func:`connect`); ``host`` is known before."""

    def __init__(self, make: Callable[[], "Client"], host: str):
        self._make = make
        self._client: "Client | None" = None
        self._lock = threading.Lock()
        self.host = host

    def _real(self) -> "Client":
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)
