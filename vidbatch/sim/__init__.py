"""A simulator of MiniMax's video generation API, for tests, demos and ``vidbatch run --sim``.

It plays the contract in ``shared/minimax-api.md`` over real HTTP (or HTTPS, with a certificate
it makes): create, query, retrieve and retrieve_content, Video Generation V2 (MiniMax-H3: create,
query, list, cancel, file upload), signed expiring download URLs, base_resp error codes (and v2's
HTTP error statuses), RPM limits, and on demand
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

from .server import SimServer, TlsFiles, make_tls, running_simulator
from .state import CALLS, FAULTS, Reply, SimConfig, Simulator
from .store import SimTask, V2Task

__all__ = [
    "CALLS",
    "FAULTS",
    "Reply",
    "SimConfig",
    "SimServer",
    "SimTask",
    "Simulator",
    "TlsFiles",
    "V2Task",
    "make_tls",
    "running_simulator",
]
