"""Runner benchmarks (issue 4). Figures, not tests: run by hand, results go in the README.

    python benchmarks/bench_run.py noop      [--jobs 10000]
    python benchmarks/bench_run.py throughput [--jobs 1000 --latency 2 --concurrency 50 --poll 0.5]
    python benchmarks/bench_run.py memory     # peak RSS vs number of jobs and video size

The simulator runs in this process; every measured `vidbatch run` is a subprocess, so its wall
time and peak RSS (ru_maxrss, read by the child itself at exit) are its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vidbatch.sim import SimConfig, running_simulator  # noqa: E402

KEY = "bench-key"
# Runs `vidbatch` in a child and reports the child's own peak RSS on stderr at exit.
RSS_WRAPPER = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
    "from vidbatch.cli import main\n"
    "sys.argv = ['vidbatch'] + sys.argv[1:]\n"
    "main()\n"
)


def manifest(folder: Path, jobs: int) -> Path:
    """A text-to-video manifest of exactly `jobs` jobs: a matrix over one key, templated name and prompt."""
    path = folder / "bench.toml"
    path.write_text(
        'output_dir = "renders"\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n'
        '[vars]\nstyle = "soft light"\n'
        '[[jobs]]\nname = "shot-{{ i }}"\n'
        'prompt = "Benchmark shot {{ i }}, {{ style }} [Push in]"\n'
        f"matrix = {{ i = {json.dumps(list(range(jobs)))} }}\n"
    )
    return path


def run_cli(args: list[str], env: dict[str, str]) -> tuple[float, int, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *args], env={**os.environ, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rss = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB")), -1)
    if proc.returncode != 0:
        sys.exit(f"vidbatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, rss, proc


def minimal_noop(folder: Path, manifest_path: Path) -> float:
    """The floor a no-op run is compared with: hash the resolved requests, look each key up in
    SQLite, stat each output. (Requests are rebuilt from the state, so no manifest work counts.)"""
    start = time.perf_counter()
    conn = sqlite3.connect(folder / ".vidbatch" / "state.db")
    rows = conn.execute("select jobs.key, jobs.request, outputs.path from jobs join outputs on outputs.key = jobs.key").fetchall()
    found = 0
    for key, request, path in rows:
        digest = hashlib.sha256(json.dumps(json.loads(request), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        assert len(digest) == 64
        if conn.execute("select state from jobs where key = ?", (key,)).fetchone() is not None:
            found += 1
        os.stat(path)
    assert found == len(rows)
    return time.perf_counter() - start


def bench_noop(jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_simulator(SimConfig(key=KEY)) as server:
        folder = Path(tmp)
        m = manifest(folder, jobs)
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": KEY}
        print(f"rendering {jobs} jobs against the simulator first ...", flush=True)
        wall, _, _ = run_cli(["run", str(m), "--poll-interval", "0", "--rpm", "1000000", "--concurrency", "64"], env)
        print(f"  first run: {wall:.1f} s")
        calls_before = sum(server.sim.calls.values())
        times = []
        for _ in range(3):
            wall, rss, proc = run_cli(["run", str(m), "--poll-interval", "0"], env)
            times.append(wall)
        assert sum(server.sim.calls.values()) == calls_before, "a no-op run made API calls"
        floor = [minimal_noop(folder, m) for _ in range(3)]
        # the child's interpreter start and imports, measured alone
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import vidbatch.cli, vidbatch.project, vidbatch.manifest, vidbatch.runner, vidbatch.client"], check=True)
        startup = time.perf_counter() - start
        best = min(times)
        print(f"no-op run of {jobs} finished jobs: best {best:.2f} s of {', '.join(f'{t:.2f}' for t in times)} (peak RSS {rss / 1024:.0f} MiB), 0 API calls")
        print(f"  of which interpreter + imports: {startup:.2f} s")
        print(f"minimal script (hash + SQLite lookup + stat): best {min(floor):.2f} s")
        print(f"ratio, whole command / minimal script: {best / min(floor):.1f}x; excluding interpreter start: {(best - startup) / min(floor):.1f}x")


def bench_throughput(jobs: int, latency: float, concurrency: int, poll: float, video_bytes: int | None = None, quiet: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp, running_simulator(SimConfig(key=KEY, latency=latency, video_bytes=video_bytes)) as server:
        folder = Path(tmp)
        m = manifest(folder, jobs)
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": KEY}
        wall, rss, proc = run_cli(["run", str(m), "--poll-interval", str(poll), "--rpm", "1000000", "--concurrency", str(concurrency)], env)
        calls = dict(server.sim.calls)
        n = len(server.sim.tasks)
        ideal = math.ceil(jobs / concurrency) * latency
        result = {
            "jobs": n,
            "wall_s": round(wall, 1),
            "ideal_s": ideal,
            "ratio": round(wall / ideal, 2) if ideal else None,
            "per_job": {k: round(v / n, 2) for k, v in calls.items() if v},
            "max_polls_allowed": latency / poll + 1 if poll else None,
            "peak_rss_mib": round(rss / 1024, 1),
        }
        if not quiet:
            print(json.dumps(result, indent=2))
        return result


def bench_memory() -> None:
    print("peak RSS of `vidbatch run` (MiB), latency 0:")
    for jobs, size in [(100, None), (1000, None), (100, 20_000_000), (100, 100_000_000)]:
        r = bench_throughput(jobs, 0.0, 50, 0.0, video_bytes=size, quiet=True)
        label = f"{size / 1e6:.0f} MB videos" if size else "10 KB videos"
        print(f"  {jobs:>5} jobs, {label:<13}: {r['peak_rss_mib']:>6} MiB  ({r['wall_s']} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    noop = sub.add_parser("noop")
    noop.add_argument("--jobs", type=int, default=10_000)
    tp = sub.add_parser("throughput")
    tp.add_argument("--jobs", type=int, default=1000)
    tp.add_argument("--latency", type=float, default=2.0)
    tp.add_argument("--concurrency", type=int, default=50)
    tp.add_argument("--poll", type=float, default=0.5)
    sub.add_parser("memory")
    args = parser.parse_args()
    if args.which == "noop":
        bench_noop(args.jobs)
    elif args.which == "throughput":
        bench_throughput(args.jobs, args.latency, args.concurrency, args.poll)
    else:
        bench_memory()


if __name__ == "__main__":
    main()
