"""A simulator of MiniMax's video generation API, for tests, demos and ``vidbatch run --sim``.

It plays the contract in ``shared/minimax-api.md`` over real HTTP: create, query, retrieve and
retrieve_content, signed expiring download URLs, base_resp error codes, RPM limits, and on demand
the faults a client must survive (HTTP 5xx/429, dropped connections, lost create answers,
truncated downloads, expired URLs). Every video is a real, playable MP4 that names its task.

- :mod:`.state`: the rules (:class:`Simulator`), independent of HTTP;
- :mod:`.store`: where tasks are kept: in memory, or in ``SimConfig.data_dir`` across processes;
- :mod:`.server`: the HTTP layer and :func:`running_simulator`;
- :mod:`.video`: how per-task videos are made from one bundled clip, without ffmpeg.

Usage::

    with running_simulator(SimConfig(key="k", latency=30)) as server:
        ...  # point a client at server.base_url with server.key
        server.sim.advance(30)  # the task is done, without sleeping

    # tasks kept in a folder: a later simulator (another process too) answers for them
    with running_simulator(SimConfig(key="k", data_dir=Path(".vidbatch/sim/server"))) as server:
        ...
"""

from .server import SimServer, running_simulator
from .state import CALLS, FAULTS, Reply, SimConfig, Simulator
from .store import SimTask

__all__ = ["CALLS", "FAULTS", "Reply", "SimConfig", "SimServer", "SimTask", "Simulator", "running_simulator"]
