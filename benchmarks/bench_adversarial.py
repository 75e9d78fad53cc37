"""Time and memory of every case of the adversarial corpus (issue 11: each under 5 s and 500 MB).

Runs each case of ``tests/test_adversarial.py`` the way the test does (the real CLI, ``vidbatch
run``, in a forked child with the same guards, against a simulator on loopback) and prints one
line per case, then the largest time and peak RSS::

    PYTHONPATH=$PWD python benchmarks/bench_adversarial.py [CASE_ID ...]

A forked child's peak RSS includes the pages it inherits from this process (which holds the
corpus's own large inputs, about 200 MB): the figure printed is the child's whole peak, and the
inherited part is printed once at the top. Exits 1 when a case is over a target, or does not
exit 2, or any case reached the API.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import TEST_KEY  # noqa: E402
from tests.test_adversarial import CASES, HEADER, _run_forked  # noqa: E402
from vidbatch.sim import SimConfig, running_simulator  # noqa: E402

TARGET_SECONDS = 5.0
TARGET_MB = 500.0


def main(only: list[str]) -> int:
    cases = [c for c in CASES if not only or c.id in only]
    worst_s = worst_mb = 0.0
    bad = 0
    with tempfile.TemporaryDirectory() as tmp, running_simulator(SimConfig(key=TEST_KEY)) as sim:
        home = Path(tmp) / "home"
        home.mkdir()
        for name in ("VIDBATCH_STATE", "VIDBATCH_CONFIG", "MINIMAX_API_KEY", "MINIMAX_API_HOST"):
            os.environ.pop(name, None)
        os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
        inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"(each child starts with the {inherited:.0f} MB this process holds)")
        for case in cases:
            work = Path(tmp) / case.id
            work.mkdir()
            for name, content in case.files.items():
                path = work / name
                if isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content if content.startswith(HEADER) else textwrap.dedent(content), encoding="utf-8")
            if case.setup is not None:
                case.setup(work)
            env = {"MINIMAX_API_HOST": sim.base_url, "MINIMAX_API_KEY": TEST_KEY, **case.env}
            code, _, seconds, rss = _run_forked(["run", case.manifest, "--max-renders", "5", *case.args], work, env)
            over = seconds > TARGET_SECONDS or rss > TARGET_MB or code != 2
            bad += over
            worst_s, worst_mb = max(worst_s, seconds), max(worst_mb, rss)
            print(f"{case.id:28} exit {code:3}  {seconds:6.2f} s  {rss:6.0f} MB{'  OVER' if over else ''}", flush=True)
        calls = sum(sim.sim.calls.values())
    print(f"\n{len(cases)} cases: max {worst_s:.2f} s, max peak RSS {worst_mb:.0f} MB, API calls {calls}; "
          f"{bad} over target ({TARGET_SECONDS:g} s, {TARGET_MB:g} MB, exit 2)")
    return 1 if bad or calls else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
