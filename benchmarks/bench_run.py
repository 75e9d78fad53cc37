"""Runner benchmarks (issues 4 and 15). Figures, not tests: run by hand, results go in the README.

    python benchmarks/bench_run.py noop       [--jobs 100 1000 10000 --rounds 7]
    python benchmarks/bench_run.py throughput [--jobs 1000 --latency 2 --concurrency 50 --poll 0.5]
    python benchmarks/bench_run.py first-run  [--jobs 10000 --latency 0.05 --concurrency 64 --profile
                                               --rounds 1 --against CHECKOUT]
    python benchmarks/bench_run.py wire-floor [--jobs 10000 --latency 0.05 --concurrency 64 --rounds 2]
    python benchmarks/bench_run.py memory     # peak RSS vs number of jobs and video size

The simulator runs in this process; every measured `vidbatch` command is a subprocess, so its wall
time and peak RSS (ru_maxrss, read by the child itself at exit) are its own.

``noop`` times a no-op ``run`` and ``plan --check`` of a finished manifest against the minimal
script (hash each request, read one SQLite table, stat each output; a subprocess too, so both
sides pay an interpreter start), alternated round by round, and reports medians and ratios. The
first run writes the job cache (``vidbatch.jobcache``); one no-op with the cache removed is
reported apart, as the cost of a miss. ``fast_path`` says whether each command was answered by
the no-op fast path (``vidbatch.cli.fast``: click never imported) or went through click.

``first-run`` runs ``vidbatch run`` in a child process instrumented from outside the library: the
client's ``create`` (on the runner's event loop, ``AsyncCalls``) timestamps each answer, the task-id journal's ``note`` each journal line
(answer-to-journal is the window in which a crash would leave a create uncertain) and the journal's
``committed`` each commit of a task id to the database (the commit of the scheduler's turn that
wrote it; a crash before it is replayed from the journal at the next start). It also
counts HTTP calls, store transactions and events per job, times each kind of call from the
runner's await to its answer (``call_ms``: how long an answer waits to be read, not only the
wire), the CPU time of the scheduler's thread (which also runs the loop: its reciprocal is the
run's ceiling in jobs per second, steadier than jobs per second on a shared machine; with the
simulator's CPU, ``ceiling_jobs_per_s`` also gives what all the machine's cores would allow, the
most any split into threads or processes could reach at today's CPU per job), and with
``--profile`` prints where the child's time went. ``--against`` a checkout of
another version (``git worktree add /tmp/old REV``) runs it alternately with this one, round by
round against the same simulator, and prints the medians of each (``--rounds``).

``wire-floor`` runs a minimal script that does a first run's work with the same libraries and
nothing else (``WIRE_FLOOR_SCRIPT``: an intent row, the task id committed, polls, the file's URL,
the video streamed, hashed, fsynced and renamed), alternated with vidbatch's first run: the
floor under "as fast as the wire" on this machine, in jobs per second and CPU per job.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
#: the checkout whose vidbatch this process runs: this one, or (a child of ``first-run
#: --against``) the other one
TREE = Path(os.environ.get("VIDBATCH_BENCH_TREE") or HERE.parent)
sys.path.insert(0, str(TREE))

from vidbatch.sim import SimConfig, running_simulator  # noqa: E402
from vidbatch.sim import video as sim_video  # noqa: E402

# The simulator encodes a distinct H.264 clip for each task (PyAV, frames drawn in Python): that
# is the server's work, which MiniMax does on its own machines, but here it would take the
# client's cores. The benchmarks serve the bundled clip instead (still one file per task: each
# carries its task's metadata box), so what is timed is vidbatch and the wire.
sim_video.task_clip = lambda task_id: sim_video.clip_bytes()

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
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.toml"
    path.write_text(
        'output_dir = "renders"\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n'
        '[vars]\nstyle = "soft light"\n'
        '[[jobs]]\nname = "shot-{{ i }}"\n'
        'prompt = "Benchmark shot {{ i }}, {{ style }} [Push in]"\n'
        f"matrix = {{ i = {json.dumps(list(range(jobs)))} }}\n"
    )
    return path


#: Children run as an installed vidbatch would: with compiled bytecode (kept in a temporary
#: folder, not beside the sources), even where the environment says not to write it.
PYCACHE = tempfile.mkdtemp(prefix="vidbatch-bench-pycache-")
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPYCACHEPREFIX": PYCACHE}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(args: list[str], env: dict[str, str], *, check: bool = True) -> tuple[float, int, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, *args], env={**CHILD_ENV, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rss = next((int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS_KB")), -1)
    if check and proc.returncode != 0:
        sys.exit(f"vidbatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, rss, proc


MINIMAL_SCRIPT = """
import hashlib, json, os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
rows = conn.execute("select jobs.key, jobs.request, jobs.state, outputs.path from jobs join outputs on outputs.key = jobs.key").fetchall()
for key, request, state, path in rows:
    hashlib.sha256(json.dumps(json.loads(request), sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    os.stat(path)
print(len(rows))
"""


def minimal_noop(folder: Path) -> float:
    """The floor a no-op is compared with, as a subprocess: hash each request, read one SQLite
    table, stat each output. (Requests come from the state, so no manifest work counts.)"""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", MINIMAL_SCRIPT, str(folder / ".vidbatch" / "state.db")], env=CHILD_ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def fast_path_taken(args: list[str], env: dict[str, str]) -> bool:
    """Whether ``vidbatch ARGS`` was answered by the no-op fast path (vidbatch.cli.fast), which
    never imports click."""
    probe = RSS_WRAPPER.replace("import atexit, resource, sys\n", "import atexit, resource, sys\natexit.register(lambda: print('CLICK', 'click' in sys.modules, file=sys.stderr))\n")
    proc = subprocess.run([sys.executable, "-c", probe, *args], env={**CHILD_ENV, **env}, capture_output=True, text=True, check=True)
    return "CLICK False" in proc.stderr


def timed(measure: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child processes) of ``measure()``."""
    cpu, start = _children_cpu(), time.perf_counter()
    measure()
    return time.perf_counter() - start, _children_cpu() - cpu


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_noop(sizes: list[int], rounds: int) -> list[dict]:
    results = []
    for jobs in sizes:
        with tempfile.TemporaryDirectory() as tmp, running_simulator(SimConfig(key=KEY)) as server:
            folder = Path(tmp)
            m = manifest(folder, jobs)
            env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": KEY}
            first = ["run", str(m), "--poll-interval", "0", "--rpm", "1000000", "--concurrency", "64", "--max-renders", str(jobs)]
            wall, _, proc = run_cli(first, env, check=False)
            if proc.returncode != 0:  # on a loaded machine a create can time out: finish the state
                run_cli([*first, "--resubmit-uncertain", "--retry-failed"], env)
            print(f"{jobs} jobs: first run {wall:.1f} s", flush=True)
            calls_before = sum(server.sim.calls.values())
            # The first run wrote the job cache; a miss is measured once with the cache removed.
            shutil.rmtree(folder / ".vidbatch" / "cache", ignore_errors=True)
            miss, _, _ = run_cli(["run", str(m), "--poll-interval", "0"], env)  # loads, writes the cache
            run_cli(["run", str(m), "--poll-interval", "0"], env)  # warm: bytecode compiled, files cached
            fast = {name: fast_path_taken(args, env) for name, args in (("run", ["run", str(m), "--poll-interval", "0"]), ("plan --check", ["plan", "--check", str(m)]))}
            commands: dict[str, Callable[[], object]] = {
                "run": lambda: run_cli(["run", str(m), "--poll-interval", "0"], env),
                "plan --check": lambda: run_cli(["plan", "--check", str(m)], env),
                "minimal": lambda: minimal_noop(folder),
            }
            walls: dict[str, list[float]] = {name: [] for name in commands}
            cpus: dict[str, list[float]] = {name: [] for name in commands}
            for k in range(rounds):  # alternated (and rotated), so a slow spell of the machine hits all three
                names = list(commands)[k % 3 :] + list(commands)[: k % 3]
                for name in names:
                    wall, cpu = timed(commands[name])
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            assert sum(server.sim.calls.values()) == calls_before, "a no-op run made API calls"
            floor, floor_cpu = median(walls["minimal"]), median(cpus["minimal"])
            r = {
                "jobs": jobs,
                "miss_run_s": round(miss, 3),
                "run_s": round(median(walls["run"]), 3),
                "plan_check_s": round(median(walls["plan --check"]), 3),
                "minimal_s": round(floor, 3),
                "run_ratio": round(median(walls["run"]) / floor, 2),
                "plan_check_ratio": round(median(walls["plan --check"]) / floor, 2),
                "run_cpu_s": round(median(cpus["run"]), 3),
                "plan_check_cpu_s": round(median(cpus["plan --check"]), 3),
                "minimal_cpu_s": round(floor_cpu, 3),
                "run_cpu_ratio": round(median(cpus["run"]) / floor_cpu, 2),
                "plan_check_cpu_ratio": round(median(cpus["plan --check"]) / floor_cpu, 2),
                "load_average": [round(x, 1) for x in os.getloadavg()],
                "fast_path": fast,
            }
            print("  " + json.dumps(r), flush=True)
            results.append(r)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(f"bare interpreter start: {time.perf_counter() - start:.3f} s")
    print("medians; wall seconds, then CPU seconds (user + system) of each command's process")
    print(f"{'jobs':>6} {'run s':>7} {'plan --check s':>15} {'minimal s':>10} {'run/min':>8} {'check/min':>10} {'miss s':>7}   {'cpu: run':>9} {'check':>6} {'min':>6} {'run/min':>8} {'check/min':>10}")
    for r in results:
        print(
            f"{r['jobs']:>6} {r['run_s']:>7} {r['plan_check_s']:>15} {r['minimal_s']:>10} {r['run_ratio']:>7}x {r['plan_check_ratio']:>9}x {r['miss_run_s']:>7}"
            f"   {r['run_cpu_s']:>9} {r['plan_check_cpu_s']:>6} {r['minimal_cpu_s']:>6} {r['run_cpu_ratio']:>7}x {r['plan_check_cpu_ratio']:>9}x"
        )
    return results


def bench_throughput(jobs: int, latency: float, concurrency: int, poll: float, video_bytes: int | None = None, quiet: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp, running_simulator(SimConfig(key=KEY, latency=latency, video_bytes=video_bytes)) as server:
        folder = Path(tmp)
        m = manifest(folder, jobs)
        env = {"MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": KEY}
        wall, rss, proc = run_cli(["run", str(m), "--poll-interval", str(poll), "--rpm", "1000000", "--concurrency", str(concurrency), "--max-renders", str(jobs)], env)
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


def first_run_child(manifest_path: str, concurrency: int, poll: float, profile: bool) -> None:
    """In the child: ``project.run`` with a timestamping client and store (wrapped here, not in
    the library); prints one JSON line of figures, and the profile to stderr when asked."""
    import cProfile
    import pstats
    import threading

    from vidbatch import project
    from vidbatch.client import AsyncCalls, Client
    from vidbatch.runner import RunOptions
    from vidbatch.state import Store, TaskIdJournal

    answered: dict[str, float] = {}
    journaled: dict[str, float] = {}
    committed: dict[str, float] = {}
    lock = threading.Lock()
    store_calls: dict[str, list[float]] = {}
    traced: dict[str, int] = {}
    events: dict[str, int] = {}

    call_ms: dict[str, list[float]] = {}
    real_create = AsyncCalls.create

    async def create(self: AsyncCalls, request: dict) -> str:  # the runner's creates, on its event loop
        task_id = await real_create(self, request)
        with lock:
            answered[task_id] = time.perf_counter()
        return task_id

    real_committed = TaskIdJournal.committed

    def journal_committed(self: TaskIdJournal, task_id: str) -> None:  # called once the task id's commit is done
        real_committed(self, task_id)
        committed[task_id] = time.perf_counter()

    real_note = TaskIdJournal.note

    def note(self: TaskIdJournal, key: str, attempt: int, task_id: str) -> None:
        real_note(self, key, attempt, task_id)
        journaled[task_id] = time.perf_counter()

    def clocked(name: str, fn: Any) -> Any:
        async def wrapper(self: AsyncCalls, *args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(self, *args, **kw)
            finally:
                call_ms.setdefault(name, []).append((time.perf_counter() - start) * 1000)

        return wrapper

    AsyncCalls.create = create  # type: ignore[method-assign]
    for name in ("create", "query", "retrieve", "download"):
        setattr(AsyncCalls, name, clocked(name, getattr(AsyncCalls, name)))
    TaskIdJournal.note = note  # type: ignore[method-assign]
    TaskIdJournal.committed = journal_committed  # type: ignore[method-assign]

    def timed(name: str, fn: object) -> object:
        def wrapper(*args: object, **kw: object) -> object:
            start = time.perf_counter()
            try:
                return fn(*args, **kw)  # type: ignore[operator]
            finally:
                store_calls.setdefault(name, []).append(time.perf_counter() - start)

        return wrapper

    for name in [n for n in vars(Store) if n.startswith("record_")]:
        setattr(Store, name, timed(name, getattr(Store, name)))

    real_init = Store.__init__

    def init(self: Store, *args: object, **kw: object) -> None:
        real_init(self, *args, **kw)  # type: ignore[arg-type]

        def trace(sql: str) -> None:  # counted by text, sorted out at the end: this runs in the measured run
            traced[sql] = traced.get(sql, 0) + 1

        self.conn.set_trace_callback(trace)

    Store.__init__ = init  # type: ignore[method-assign]

    def on_event(e: object) -> None:
        kind = str(getattr(e, "kind", type(e).__name__))
        events[kind] = events.get(kind, 0) + 1

    ws = project.load([manifest_path])
    options = RunOptions(concurrency=concurrency, rpm=1_000_000, poll_interval=poll, max_renders=len(ws.jobs))
    # CPU time of this thread (the scheduler's, which also runs the loop), not wall time: waits and
    # blocking calls do not count, so the profile says where the ceiling goes
    profiler = cProfile.Profile(time.thread_time) if profile else None
    with Client.from_env() as client:
        start, thread_start = time.perf_counter(), time.thread_time()
        if profiler:
            profiler.enable()
        result = project.run(ws, client, options, on_event=on_event)
        if profiler:
            profiler.disable()
        wall, thread_cpu = time.perf_counter() - start, time.thread_time() - thread_start
    jobs = len(ws.jobs)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    statements = {"begin": 0, "commit": 0, "all": sum(traced.values())}
    for sql, count in traced.items():
        head = sql.lstrip()[:6].upper()
        if head.startswith(("BEGIN", "SAVEPO")):
            statements["begin"] += count
        elif head.startswith(("COMMIT", "RELEAS")):
            statements["commit"] += count
    def spread(ends: dict[str, float]) -> dict[str, float]:
        ms = sorted((ends[t] - answered[t]) * 1000 for t in answered if t in ends)
        q = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
        return {"median": round(statistics.median(ms), 3), "p99": round(q[98], 3), "max": round(ms[-1], 2), "n": len(ms)}
    out = {
        "vidbatch": str(Path(project.__file__).parent),  # which checkout ran
        "jobs": jobs,
        "run_wall_s": round(wall, 2),
        "jobs_per_s": round(jobs / wall, 1),
        # the window in which a crash leaves a create uncertain: answer -> its journal line
        "answer_to_journal_ms": spread(journaled),
        # answer -> the commit of the scheduler's turn that wrote it (a crash in between is replayed)
        "answer_to_commit_ms": spread(committed),
        # each HTTP call, from the runner's await to its answer (as seen on the event loop)
        "call_ms": {k: {"median": round(statistics.median(v), 1), "p90": round(statistics.quantiles(v, n=10)[8], 1)} for k, v in sorted(call_ms.items()) if len(v) > 1},
        "store_calls_per_job": {k: round(len(v) / jobs, 2) for k, v in sorted(store_calls.items())},
        "store_seconds": {k: round(sum(v), 2) for k, v in sorted(store_calls.items())},
        "sql_per_job": {k: round(v / jobs, 2) for k, v in statements.items()},
        "events_per_job": {k: round(v / jobs, 2) for k, v in sorted(events.items())},
        "result": str(getattr(result, "stop", "")),
        "cpu_ms_per_job": round((usage.ru_utime + usage.ru_stime) * 1000 / jobs, 2),
        "cpu_ms_per_job_in_kernel": round(usage.ru_stime * 1000 / jobs, 2),
        # the scheduler's thread alone (it also runs the loop): 1000 / this is the run's ceiling in
        # jobs/s, and it moves less with the machine's other load than jobs/s does
        "scheduler_thread_cpu_ms_per_job": round(thread_cpu * 1000 / jobs, 2),
        "scheduler_thread_busy": round(thread_cpu / wall, 2),
    }
    if profiler:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    print("FIRST_RUN " + json.dumps(out))


#: The floor under a first run (``wire-floor``): what a minimal, still safe script does per
#: job with the same libraries (aiohttp, sqlite3), written for speed and nothing else: an intent
#: row committed before the create, the task id committed on its answer, polls after the poll
#: interval, the file's URL, the video streamed into a staging file and hashed, fsynced and
#: renamed on four threads, the job marked done. No retries, no judging of answers, no events,
#: no outputs index, no job cache. Prints one JSON line: jobs, wall seconds and its CPU seconds.
WIRE_FLOOR_SCRIPT = """
import asyncio, concurrent.futures, hashlib, json, os, resource, sqlite3, sys, time
import aiohttp
host, key, folder, jobs, concurrency, poll = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
os.makedirs(folder, exist_ok=True)
db = sqlite3.connect(os.path.join(folder, "state.db"), isolation_level=None)
db.execute("pragma journal_mode=wal"); db.execute("pragma synchronous=normal")
db.execute("create table jobs (key text primary key, state text, task_id text, sha256 text)")
threads = concurrent.futures.ThreadPoolExecutor(4)
auth = {"Authorization": "Bearer " + key}
def place(staging, target):
    with open(staging, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(staging, target)
    fd = os.open(folder, os.O_RDONLY); os.fsync(fd); os.close(fd)
async def job(session, i, slots):
    async with slots:
        k = "job-%d" % i
        db.execute("insert into jobs values (?, 'submitting', null, null)", (k,))
        body = {"model": "MiniMax-Hailuo-02", "prompt": "Benchmark shot %d" % i}
        async with session.post(host + "/v1/video_generation", json=body, headers=auth) as r:
            task_id = (await r.json())["task_id"]
        db.execute("update jobs set state = 'running', task_id = ? where key = ?", (task_id, k))
        while True:
            await asyncio.sleep(poll)
            async with session.get(host + "/v1/query/video_generation", params={"task_id": task_id}, headers=auth) as r:
                q = await r.json()
            if q["status"] == "Success":
                break
        async with session.get(host + "/v1/files/retrieve", params={"file_id": q["file_id"]}, headers=auth) as r:
            url = (await r.json())["file"]["download_url"]
        target = os.path.join(folder, k + ".mp4"); staging = target + ".part"
        digest = hashlib.sha256()
        async with session.get(url) as r:
            with open(staging, "wb") as out:
                async for chunk in r.content.iter_chunked(1 << 16):
                    out.write(chunk); digest.update(chunk)
        await asyncio.get_running_loop().run_in_executor(threads, place, staging, target)
        db.execute("update jobs set state = 'done', sha256 = ? where key = ?", (digest.hexdigest(), k))
async def main():
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(job(session, i, slots) for i in range(jobs)))
start = time.perf_counter()
asyncio.run(main())
wall = time.perf_counter() - start
u = resource.getrusage(resource.RUSAGE_SELF)
print("WIRE_FLOOR " + json.dumps({"jobs": jobs, "wall_s": wall, "cpu_s": u.ru_utime + u.ru_stime}))
"""


def bench_wire_floor(jobs: int, latency: float, concurrency: int, poll: float, rounds: int) -> None:
    """The minimal script above against the simulator, then a first run of vidbatch, alternated
    round by round: jobs per second, CPU per job of each and of the simulator, and the ceiling
    the floor's CPU would allow on this machine's cores."""
    with tempfile.TemporaryDirectory() as tmp, running_simulator(SimConfig(key=KEY, latency=latency)) as server:
        figures: dict[str, list[dict[str, float]]] = {"floor": [], "vidbatch": []}
        env = _first_run_env(server, HERE.parent)
        _warm_up(env, Path(tmp) / "warm-up", concurrency, poll)
        for round_ in range(rounds):
            folder = Path(tmp) / f"floor-{round_}"
            cpu = _cpu_seconds()
            proc = subprocess.run([sys.executable, "-c", WIRE_FLOOR_SCRIPT, server.base_url, KEY, str(folder), str(jobs), str(concurrency), str(poll)], env=CHILD_ENV, capture_output=True, text=True)
            sim_cpu = _cpu_seconds() - cpu
            if proc.returncode != 0:
                sys.exit(f"the floor script failed:\n{proc.stderr[-3000:]}")
            got = _tagged_json(proc.stdout, "WIRE_FLOOR")
            figures["floor"].append({"jobs_per_s": jobs / got["wall_s"], "cpu_ms_per_job": got["cpu_s"] * 1000 / jobs, "simulator_cpu_ms_per_job": sim_cpu * 1000 / jobs})
            shutil.rmtree(folder, ignore_errors=True)
            got = _first_run(server, env, Path(tmp) / f"vidbatch-{round_}", jobs, concurrency, poll)
            figures["vidbatch"].append({k: got[k] for k in ("jobs_per_s", "cpu_ms_per_job", "simulator_cpu_ms_per_job")})
            for label in figures:
                last = figures[label][-1]
                print(f"round {round_ + 1} {label:<8}: " + ", ".join(f"{k} {v:.2f}" for k, v in last.items()), flush=True)
        print(f"medians of {rounds} rounds ({jobs} jobs, latency {latency} s, {len(os.sched_getaffinity(0))} cores):")
        for label, runs in figures.items():
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            ceiling = _all_cores_ceiling(med["cpu_ms_per_job"], med["simulator_cpu_ms_per_job"])
            print(f"  {label:<8} " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()) + f", ceiling of all cores {ceiling:.0f} jobs/s")


def _cpu_seconds() -> float:
    """CPU time of this process (the simulator's threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


FIRST_RUN_CHILD = [sys.executable, str(Path(__file__).resolve()), "first-run-child"]


def _first_run_env(server: Any, tree: Path) -> dict[str, str]:
    """The environment of a first run of ``tree``'s vidbatch against ``server``."""
    return {**CHILD_ENV, "MINIMAX_API_HOST": server.base_url, "MINIMAX_API_KEY": KEY, "VIDBATCH_BENCH_TREE": str(tree)}


def _warm_up(env: dict[str, str], folder: Path, concurrency: int, poll: float) -> None:
    """A first, small run compiles what a run imports (aiohttp on its first call) into this
    benchmark's own bytecode cache, as installing the package does: otherwise the measured run
    would spend seconds compiling inside its timed window."""
    subprocess.run([*FIRST_RUN_CHILD, str(manifest(folder, 20)), str(concurrency), str(poll)], env=env, capture_output=True, check=True)


def _tagged_json(stdout: str, tag: str) -> dict[str, Any]:
    """The JSON of a child's line that starts with ``tag``."""
    return json.loads(next(x for x in stdout.splitlines() if x.startswith(tag + " ")).split(" ", 1)[1])


def _all_cores_ceiling(cpu_ms_per_job: float, simulator_cpu_ms_per_job: float) -> float:
    """Jobs per second that all this machine's cores allow at these CPU costs per job: the most
    any split of the work into threads or processes could reach."""
    return len(os.sched_getaffinity(0)) * 1000 / (cpu_ms_per_job + simulator_cpu_ms_per_job)


def _first_run(server: Any, env: dict[str, str], folder: Path, jobs: int, concurrency: int, poll: float, profile: bool = False) -> dict[str, Any]:
    """One measured first run of ``jobs`` jobs in ``folder`` (removed after): the child's
    figures, with the simulator's CPU, the ceilings, the load and the HTTP calls per job."""
    m = manifest(folder, jobs)
    calls_before = dict(server.sim.calls)
    start, cpu = time.perf_counter(), _cpu_seconds()
    proc = subprocess.run([*FIRST_RUN_CHILD, str(m), str(concurrency), str(poll)] + (["--profile"] if profile else []), env=env, capture_output=True, text=True)
    wall, sim_cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    if proc.returncode != 0:
        sys.exit(f"first run of {env['VIDBATCH_BENCH_TREE']} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    if profile:
        print(proc.stderr)
    result = _tagged_json(proc.stdout, "FIRST_RUN")
    calls = {k: v - calls_before.get(k, 0) for k, v in server.sim.calls.items()}
    result["process_wall_s"] = round(wall, 2)
    result["simulator_cpu_ms_per_job"] = round(sim_cpu * 1000 / jobs, 2)
    # What the CPU per job allows: one thread runs the scheduler and its loop; all the cores,
    # shared with the simulator, run everything.
    result["ceiling_jobs_per_s"] = {
        "scheduler_thread": round(1000 / result["scheduler_thread_cpu_ms_per_job"], 1),
        "all_cores": round(_all_cores_ceiling(result["cpu_ms_per_job"], result["simulator_cpu_ms_per_job"]), 1),
    }
    result["load_average"] = os.getloadavg()
    result["http_calls_per_job"] = {k: round(v / jobs, 2) for k, v in calls.items() if v}
    shutil.rmtree(folder, ignore_errors=True)  # 10,000 videos: a gigabyte a run
    return result


def bench_first_run(jobs: int, latency: float, concurrency: int, poll: float, profile: bool, rounds: int = 1, against: Path | None = None) -> list[dict]:
    """``rounds`` first runs of this tree's vidbatch (and, with ``against``, of that checkout's,
    alternated run by run against the same simulator); each run's figures, then medians."""
    trees = [("this", HERE.parent)] + ([("against", against.resolve())] if against else [])
    results: dict[str, list[dict]] = {label: [] for label, _ in trees}
    with tempfile.TemporaryDirectory() as tmp, running_simulator(SimConfig(key=KEY, latency=latency)) as server:
        folder = Path(tmp)
        envs = {label: _first_run_env(server, tree) for label, tree in trees}
        for label, _ in trees:
            _warm_up(envs[label], folder / f"warm-up-{label}", concurrency, poll)
        for round_ in range(rounds):
            for label, tree in trees:
                result = _first_run(server, envs[label], folder / f"{label}-{round_}", jobs, concurrency, poll, profile)
                result["tree"] = str(tree)
                result["latency_s"] = latency
                result["concurrency"] = concurrency
                print(json.dumps(result, indent=2), flush=True)
                results[label].append(result)
    if rounds > 1 or against:
        print("medians (jobs/s, CPU ms per job, the scheduler thread's CPU ms per job, answer-to-commit median and p99 ms, ceiling of all cores in jobs/s):")
        for label, tree in trees:
            runs = results[label]
            figures = [
                statistics.median(r["jobs_per_s"] for r in runs),
                statistics.median(r["cpu_ms_per_job"] for r in runs),
                statistics.median(r["scheduler_thread_cpu_ms_per_job"] for r in runs),
                statistics.median(r["answer_to_commit_ms"]["median"] for r in runs),
                statistics.median(r["answer_to_commit_ms"]["p99"] for r in runs),
                statistics.median(r["ceiling_jobs_per_s"]["all_cores"] for r in runs),
            ]
            print(f"  {label:<8} {tree}: " + "  ".join(f"{x:.2f}" for x in figures) + f"  ({len(runs)} runs)")
    if against:
        # Each round's two runs are neighbours in time: their difference is freer of the
        # machine's drift (10-20% from one minute to the next here) than the medians are.
        print("this minus against, round by round (median [lowest, highest]):")
        for name, pick in (
            ("jobs/s", lambda r: r["jobs_per_s"]),
            ("CPU ms per job", lambda r: r["cpu_ms_per_job"]),
            ("scheduler thread CPU ms per job", lambda r: r["scheduler_thread_cpu_ms_per_job"]),
            ("simulator CPU ms per job", lambda r: r["simulator_cpu_ms_per_job"]),
        ):
            diffs = [pick(a) - pick(b) for a, b in zip(results["this"], results["against"])]
            print(f"  {name}: {statistics.median(diffs):+.2f} [{min(diffs):+.2f}, {max(diffs):+.2f}]")
    return [r for label, _ in trees for r in results[label]]


def bench_memory() -> None:
    print("peak RSS of `vidbatch run` (MiB), latency 0:")
    for jobs, size in [(100, None), (1000, None), (100, 20_000_000), (100, 100_000_000)]:
        r = bench_throughput(jobs, 0.0, 50, 0.0, video_bytes=size, quiet=True)
        label = f"{size / 1e6:.0f} MB videos" if size else "10 KB videos"
        print(f"  {jobs:>5} jobs, {label:<13}: {r['peak_rss_mib']:>6} MiB  ({r['wall_s']} s)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "first-run-child":
        first_run_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), "--profile" in sys.argv)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="which", required=True)
    noop = sub.add_parser("noop")
    noop.add_argument("--jobs", type=int, nargs="+", default=[100, 1000, 10_000])
    noop.add_argument("--rounds", type=int, default=7)
    tp = sub.add_parser("throughput")
    tp.add_argument("--jobs", type=int, default=1000)
    tp.add_argument("--latency", type=float, default=2.0)
    tp.add_argument("--concurrency", type=int, default=50)
    tp.add_argument("--poll", type=float, default=0.5)
    fr = sub.add_parser("first-run")
    fr.add_argument("--jobs", type=int, default=10_000)
    fr.add_argument("--latency", type=float, default=0.05)
    fr.add_argument("--concurrency", type=int, default=64)
    fr.add_argument("--poll", type=float, default=0.05)
    fr.add_argument("--profile", action="store_true")
    fr.add_argument("--rounds", type=int, default=1)
    fr.add_argument("--against", type=Path, help="a checkout of another version, run alternately with this one")
    wf = sub.add_parser("wire-floor")
    wf.add_argument("--jobs", type=int, default=10_000)
    wf.add_argument("--latency", type=float, default=0.05)
    wf.add_argument("--concurrency", type=int, default=64)
    wf.add_argument("--poll", type=float, default=0.05)
    wf.add_argument("--rounds", type=int, default=2)
    sub.add_parser("memory")
    args = parser.parse_args()
    if args.which == "noop":
        bench_noop(args.jobs, args.rounds)
    elif args.which == "throughput":
        bench_throughput(args.jobs, args.latency, args.concurrency, args.poll)
    elif args.which == "first-run":
        bench_first_run(args.jobs, args.latency, args.concurrency, args.poll, args.profile, args.rounds, args.against)
    elif args.which == "wire-floor":
        bench_wire_floor(args.jobs, args.latency, args.concurrency, args.poll, args.rounds)
    else:
        bench_memory()


if __name__ == "__main__":
    main()
