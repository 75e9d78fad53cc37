"""CPU per HTTP call of the client (issue 15). Figures, not tests: run by hand, results go in the README.

    python benchmarks/bench_client.py [--calls 2000] [--rounds 3] [--transports]

Against the simulator in this process (loopback HTTP, latency 0, the bundled clip), one thread
makes the calls of a job one kind at a time: ``create``, ``query``, ``retrieve``, ``download``
(the signed URL, streamed into a file and hashed), each ``--calls`` times. What is reported is
the CPU time of *the calling thread* (``RUSAGE_THREAD``, user + system) per call, so the
simulator's threads are not counted; medians of ``--rounds`` rounds, in microseconds.

``--transports`` adds the floor under the client: the same ``query`` GET made with a bare
``requests.Session``, one with ``trust_env`` off, ``urllib3.PoolManager`` and ``http.client``.

To compare with an earlier client, run this file with ``PYTHONPATH`` pointing at a checkout of it
(``git archive <commit> | tar -x -C /tmp/old``), the benchmark itself from here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.append(str(HERE.parent))  # after PYTHONPATH, so an older checkout given there wins

from vidbatch.client import Client  # noqa: E402
from vidbatch.sim import SimConfig, running_simulator  # noqa: E402
from vidbatch.sim import video as sim_video  # noqa: E402

sim_video.task_clip = lambda task_id: sim_video.clip_bytes()  # the server's work, not the client's (see bench_run)

KEY = "bench-key"
REQUEST = {"model": "MiniMax-Hailuo-02", "prompt": "Benchmark shot 1, soft light [Push in]"}


def thread_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def per_call_us(fn: Callable[[int], object], calls: int) -> float:
    """Microseconds of this thread's CPU per call of ``fn(i)``, over ``calls`` calls."""
    start = thread_cpu()
    for i in range(calls):
        fn(i)
    return (thread_cpu() - start) * 1e6 / calls


def bench_client(calls: int, rounds: int, transports: bool) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    with running_simulator(SimConfig(key=KEY, latency=0.0)) as server, tempfile.TemporaryDirectory() as tmp:
        with Client(KEY, server.base_url) as client:
            folder = Path(tmp)
            # warm up: connections, caches, and one finished task per call to come
            task_ids = [client.create(REQUEST) for _ in range(calls)]
            file_ids = [str(client.query(t).file_id) for t in task_ids]
            metas = [client.retrieve(f) for f in file_ids[:calls]]
            size = client.download(file_ids[0], folder / "warm.mp4").bytes
            for _ in range(rounds):
                results.setdefault("create", []).append(per_call_us(lambda i: client.create(REQUEST), calls))
                results.setdefault("query", []).append(per_call_us(lambda i: client.query(task_ids[i]), calls))
                results.setdefault("retrieve", []).append(per_call_us(lambda i: client.retrieve(file_ids[i]), calls))
                # download = its retrieve + the GET of the signed URL; the GET alone is download - retrieve
                # each into a new file, as the runner's staging files are (rewriting one file
                # costs the kernel more than writing a new one)
                results.setdefault("download", []).append(
                    per_call_us(lambda i: client.download(file_ids[i], folder / f"{i}.mp4", expected_bytes=size), calls)
                )
                for video in folder.glob("*.mp4"):
                    video.unlink()
        if transports:
            url = f"{server.base_url}/v1/query/video_generation?task_id={task_ids[0]}"
            headers = {"Authorization": f"Bearer {KEY}", "User-Agent": "bench"}
            for name, get in _transports(url, headers):
                get(0)
                results.setdefault(name, []).extend(per_call_us(get, calls) for _ in range(rounds))
        del metas
    return {name: round(statistics.median(v), 1) for name, v in results.items()}


def _transports(url: str, headers: dict[str, str]) -> list[tuple[str, Callable[[int], object]]]:
    import requests
    import urllib3

    session = requests.Session()
    bare = requests.Session()
    bare.trust_env = False
    pool = urllib3.PoolManager()
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port)
    target = f"{parts.path}?{parts.query}"

    def raw(i: int) -> object:
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        return json.loads(resp.read())

    return [
        ("query via requests.Session", lambda i: session.get(url, headers=headers, timeout=(10, 60)).json()),
        ("query via requests, trust_env off", lambda i: bare.get(url, headers=headers, timeout=(10, 60)).json()),
        ("query via urllib3.PoolManager", lambda i: json.loads(pool.request("GET", url, headers=headers).data)),
        ("query via http.client", raw),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transports", action="store_true", help="also time bare transports (the floor)")
    args = parser.parse_args()
    import vidbatch.client

    figures = bench_client(args.calls, args.rounds, args.transports)
    print(f"client: {vidbatch.client.__file__}")
    print("CPU of the calling thread per call (us, median of rounds):")
    for name, us in figures.items():
        print(f"  {name:<36} {us:>8.1f}")
    if {"retrieve", "download"} <= figures.keys():
        print(f"  {'(download GET alone)':<36} {figures['download'] - figures['retrieve']:>8.1f}")


if __name__ == "__main__":
    main()
