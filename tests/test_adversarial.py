"""Issue 11: the adversarial corpus. Every bad input exits 2 with a message, makes zero API calls,
writes nothing, never prints a traceback, and stays within bounds of time and memory.

Each case runs the real CLI (``vidbatch run``) in a forked child of the test process (no
interpreter start-up, so the corpus stays fast) with an address-space limit, a wall-clock guard
that kills a hang, and its peak memory read back with ``wait4``. The guards are generous so
the suite does not depend on this machine's speed; the figures the issue targets (5 s, 500 MB)
are measured by ``benchmarks/bench_adversarial.py``.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from .conftest import TEST_KEY
from .helpers import write_png

#: Guards, not targets: a case past them is a hang or a memory bomb.
WALL_GUARD = float(os.environ.get("VIDBATCH_TEST_WALL_GUARD", "60"))
RSS_GUARD_MB = 700  # forked from pytest, so the child starts with pytest's pages resident
AS_LIMIT = 3 << 30

HEADER = 'output_dir = "renders"\n[defaults]\nmodel = "MiniMax-Hailuo-02"\n\n'


@dataclass(frozen=True)
class Case:
    id: str
    fragment: str  # the message must contain this
    files: dict[str, str | bytes] = field(default_factory=dict)  # manifest.toml unless named
    setup: Callable[[Path], None] | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    manifest: str = "shots.toml"


def job(prompt: str, name: str = "shot", extra: str = "") -> str:
    return HEADER + f'[[jobs]]\nname = "{name}"\nprompt = """{prompt}"""\n{extra}'


def _fifo(name: str) -> Callable[[Path], None]:
    return lambda d: os.mkfifo(d / name)


def _link(name: str, target: str) -> Callable[[Path], None]:
    return lambda d: (d / name).symlink_to(target)


def _png(name: str, **kw: int) -> Callable[[Path], None]:
    return lambda d: write_png(d / name, **kw)


def _png_header_only(d: Path) -> None:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 4000, 3000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    (d / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)


I2V = 'model = "I2V-01"\nfirst_frame_image = "{img}"\n'
BIG_MATRIX_6 = "matrix = { " + ", ".join(f'v{i} = [{", ".join(str(n) for n in range(10))}]' for i in range(6)) + " }\n"
BIG_MATRIX_9 = "matrix = { " + ", ".join(f'v{i} = [{", ".join(str(n) for n in range(10))}]' for i in range(9)) + " }\n"
NAME_6 = "-".join("{{ v%d }}" % i for i in range(6))
NAME_9 = "-".join("{{ v%d }}" % i for i in range(9))

CASES = [
    # --- templates: time, output size, total work (item 6) ---
    Case("nested-range", "template", {"shots.toml": job("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}")}),
    Case("lipsum-huge", "template", {"shots.toml": job("{{ lipsum(10**7) }}")}),
    Case("power-tower", "template", {"shots.toml": job("{{ (7**(10**9)) % 10 }}")}),
    Case("center-2e9", "template", {"shots.toml": job("{{ 'x'|center(2000000000) }}")}),
    Case("mul-1e9", "template", {"shots.toml": job("{{ 'x' * 10**9 }}")}),
    Case("list-1e9", "template", {"shots.toml": job("{{ [1] * 10**9 }}")}),
    Case("range-join", "template", {"shots.toml": job("{{ range(10**8)|join(',') }}")}),
    Case("range-list", "template", {"shots.toml": job("{{ range(10**9)|list|length }}")}),
    Case("doubling", "template", {"shots.toml": job("{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}")}),
    Case("macro-recursion", "template", {"shots.toml": job("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")}),
    Case("include-self", "template", {"shots.toml": job("{% include 'loop.j2' %}"), "loop.j2": "{% include 'loop.j2' %}"}),
    Case("format-huge", "template", {"shots.toml": job("{{ '%s'|format('x' * 10**8) }}")}),
    Case("wordwrap-huge", "template", {"shots.toml": job("{{ ('x ' * 10**7)|wordwrap(5) }}")}),
    # Jinja's ** groups from the left: 10**10**10 is (10**10)**10, a 101-digit prompt; the
    # exponent tower the case means is written with parentheses.
    Case("big-exponent", "template", {"shots.toml": job("{{ 10**(10**10) }}")}),
    Case("name-huge", "name", {"shots.toml": HEADER + '[[jobs]]\nname = "{{ \'a\' * 10**8 }}"\nprompt = "x"\n'}),
    # --- files that are not regular files (item 7) ---
    Case("image-dev-zero", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="zero.png"))}, _link("zero.png", "/dev/zero")),
    Case("image-dev-urandom", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="rand.png"))}, _link("rand.png", "/dev/urandom")),
    Case("image-fifo", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="pipe.png"))}, _fifo("pipe.png")),
    Case("csv-dev-zero", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "x"\nforeach = "rows.csv"\n'}, _link("rows.csv", "/dev/zero")),
    Case("csv-fifo", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "x"\nforeach = "rows.csv"\n'}, _fifo("rows.csv")),
    Case("csv-folder", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "x"\nforeach = "rows.csv"\n'}, lambda d: (d / "rows.csv").mkdir()),
    Case("manifest-fifo", "shots.toml", {}, _fifo("shots.toml")),
    Case("manifest-dev-zero", "shots.toml", {}, _link("shots.toml", "/dev/zero")),
    Case("include-fifo", "template", {"shots.toml": job("{% include 'p.j2' %}")}, _fifo("p.j2")),
    Case("include-dev-zero", "template", {"shots.toml": job("{% include 'p.j2' %}")}, _link("p.j2", "/dev/zero")),
    Case("manifest-huge", "shots.toml", {"shots.toml": "# " + "x" * (64 << 20) + "\n" + job("x")}),
    Case("csv-huge-cell", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "{{ p }}"\nforeach = "rows.csv"\n', "rows.csv": "id,p\n1," + "y" * (64 << 20) + "\n"}),
    # --- expansion without a cap (item 8) ---
    Case("matrix-1e6", "jobs", {"shots.toml": HEADER + f'[[jobs]]\nname = "{NAME_6}"\nprompt = "x"\n' + BIG_MATRIX_6}),
    Case("matrix-1e9", "jobs", {"shots.toml": HEADER + f'[[jobs]]\nname = "{NAME_9}"\nprompt = "x"\n' + BIG_MATRIX_9}),
    Case("csv-times-matrix", "jobs", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}-{{ a }}-{{ b }}"\nprompt = "x"\nforeach = "rows.csv"\nmatrix = { a = [' + ",".join(map(str, range(100))) + '], b = [' + ",".join(map(str, range(100))) + '] }\n', "rows.csv": "id\n" + "\n".join(map(str, range(200))) + "\n"}),
    # --- encodings and nesting (item 9) ---
    Case("json-surrogate-name", "name", {"shots.json": '{"jobs": [{"name": "a\\ud800", "prompt": "x", "model": "MiniMax-Hailuo-02"}]}'}, manifest="shots.json"),
    Case("json-surrogate-prompt", "prompt", {"shots.json": '{"jobs": [{"name": "a", "prompt": "x\\udfff", "model": "MiniMax-Hailuo-02"}]}'}, manifest="shots.json"),
    Case("json-deep-nesting", "shots.json", {"shots.json": "[" * 100000 + "]" * 100000}, manifest="shots.json"),
    Case("toml-deep-nesting", "shots.toml", {"shots.toml": "a = " + "[" * 100000 + "]" * 100000 + "\n"}),
    Case("json-deep-objects", "shots.json", {"shots.json": '{"a":' * 50000 + "1" + "}" * 50000}, manifest="shots.json"),
    Case("binary-garbage", "shots.toml", {"shots.toml": bytes(range(256)) * 64}),
    Case("utf16-manifest", "shots.toml", {"shots.toml": job("x").encode("utf-16")}),
    Case("json-nan-duration", "duration", {"shots.json": '{"jobs": [{"name": "a", "prompt": "x", "model": "MiniMax-Hailuo-02", "duration": NaN}]}'}, manifest="shots.json"),
    Case("json-huge-int", "duration", {"shots.json": '{"jobs": [{"name": "a", "prompt": "x", "model": "MiniMax-Hailuo-02", "duration": ' + "9" * 5000 + "}]}"}, manifest="shots.json"),
    Case("json-inf-duration", "duration", {"shots.json": '{"jobs": [{"name": "a", "prompt": "x", "model": "MiniMax-Hailuo-02", "duration": 1e400}]}'}, manifest="shots.json"),
    Case("negative-duration", "duration", {"shots.toml": job("x", extra="duration = -6\n")}),
    Case("nul-in-prompt", "prompt", {"shots.json": '{"jobs": [{"name": "a", "prompt": "x\\u0000y", "model": "MiniMax-Hailuo-02"}]}'}, manifest="shots.json"),
    # --- paid, then unwritable (item 10) ---
    Case("cjk-name-too-long", "name", {"shots.toml": job("x", name="镜" * 84)}),
    Case("ascii-name-255", "name", {"shots.toml": job("x", name="n" * 250)}),
    Case("output-dir-proc", "output_dir", {"shots.toml": job("x").replace('output_dir = "renders"', 'output_dir = "/proc/vidbatch-x"')}),
    Case("output-dir-is-file", "output_dir", {"shots.toml": job("x"), "renders": "not a folder"}),
    Case("output-dir-under-file", "output_dir", {"shots.toml": job("x").replace('output_dir = "renders"', 'output_dir = "afile/renders"'), "afile": "x"}),
    # --- names and images (item 11) ---
    Case("name-con", "name", {"shots.toml": job("x", name="CON")}),
    Case("name-nul-ext", "name", {"shots.toml": job("x", name="nul.txt")}),
    Case("name-rtl-override", "name", {"shots.toml": job("x", name="abc\u202ecod.exe")}),
    Case("name-control-char", "name", {"shots.json": '{"jobs": [{"name": "a\\u0007b", "prompt": "x", "model": "MiniMax-Hailuo-02"}]}'}, manifest="shots.json"),
    Case("name-trailing-dot", "name", {"shots.toml": job("x", name="shot.")}),
    Case("png-header-only", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="big.png"))}, _png_header_only),
    Case("png-truncated", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="cut.png"))}, lambda d: (write_png(d / "cut.png"), (d / "cut.png").write_bytes((d / "cut.png").read_bytes()[:60]))),
    Case("jpeg-header-only", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="x.jpg")), "x.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"}),
    # 40 MB of manifest: refused before it is parsed (parsing alone would take 15 s).
    Case("data-url-huge", "a manifest may be at most", {"shots.toml": job("x", extra=I2V.format(img="data:image/png;base64," + "A" * (40 << 20)))}),
    # --- secrets (items 12, 13) ---
    Case("env-key-in-prompt", "MINIMAX_API_KEY", {"shots.toml": job("{{ env.MINIMAX_API_KEY }}")}),
    Case("env-key-in-url", "MINIMAX_API_KEY", {"shots.toml": job("x", extra='model = "I2V-01"\nfirst_frame_image = "https://example.com/{{ env.MINIMAX_API_KEY }}.png"\n')}),
    Case("env-key-copy", "key", {"shots.toml": job("{{ env.KEY_COPY }}")}, env={"KEY_COPY": TEST_KEY}),
    Case("var-equal-to-key", "key", {"shots.toml": job("{{ x }}")}, args=("--var", f"x={TEST_KEY}")),
    Case("env-key-in-name", "MINIMAX_API_KEY", {"shots.toml": HEADER + '[[jobs]]\nname = "k{{ env.MINIMAX_API_KEY|length }}"\nprompt = "x"\n'}),
    Case("non-latin1-key", "MINIMAX_API_KEY", {"shots.toml": job("x")}, env={"MINIMAX_API_KEY": "sk-ключ-0123456789"}),
    Case("key-with-newline", "MINIMAX_API_KEY", {"shots.toml": job("x")}, env={"MINIMAX_API_KEY": "sk-abc\r\nX-Evil: 1"}),
    # --- more of the same classes (the input engineer's additions) ---
    Case("method-ljust-1e9", "template", {"shots.toml": job("{{ 'x'.ljust(10**9) }}")}),
    Case("format-width-1e9", "template", {"shots.toml": job("{{ '%0999999999d' % 1 }}")}),
    Case("str-format-width", "template", {"shots.toml": job("{{ '{:>999999999}'.format(1) }}")}),
    Case("replace-blowup", "template", {"shots.toml": job("{{ ('a' * 90000)|replace('a', 'bbbbbbbbbb') }}")}),
    Case("loop-over-strings", "template", {"shots.toml": job("{% for a in 'x' * 90000 %}{% for b in 'y' * 90000 %}{% endfor %}{% endfor %}")}),
    Case("foreach-json-deep", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "x"\nforeach = "rows.json"\n', "rows.json": "[" * 100000 + "]" * 100000}),
    Case("foreach-json-nan", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "x"\nforeach = "rows.json"\n', "rows.json": '[{"id": 1, "duration": NaN}]'}),
    Case("output-name-too-long", "output", {"shots.toml": job("x", extra='output = "{{ name }}-' + "o" * 240 + '.mp4"\n')}),
    Case("webp-header-only", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="x.webp")), "x.webp": b"RIFF\xff\xff\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x9f\x0f\x00\xb7\x0b\x00"}),
    Case("tsv-dev-urandom", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "x"\nforeach = "rows.tsv"\n'}, _link("rows.tsv", "/dev/urandom")),
    # --- paths ---
    Case("image-outside", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="../../../../etc/hostname"))}),
    Case("foreach-absolute", "foreach", {"shots.toml": HEADER + '[[jobs]]\nname = "s{{ id }}"\nprompt = "x"\nforeach = "/etc/passwd"\n'}),
    Case("image-symlink-outside", "first_frame_image", {"shots.toml": job("x", extra=I2V.format(img="host.png"))}, _link("host.png", "/etc/hostname")),
    # --- values that multiply their arguments: refused before they are built (each would take
    # gigabytes, MemoryError under this test's address-space limit) ---
    Case("indent-many-lines", "too costly", {"shots.toml": job("{{ ('x\\n' * 50000)|indent(100000) }}")}),
    Case("replace-filter-huge", "too costly", {"shots.toml": job("{{ ('x' * 90000)|replace('x', 'y' * 90000) }}")}),
    Case("join-filter-separator", "too costly", {"shots.toml": job("{{ range(100000)|join('x' * 99999) }}")}),
    Case("wordwrap-wrapstring", "too costly", {"shots.toml": job("{{ ('x ' * 49999)|wordwrap(1, wrapstring='y' * 99999) }}")}),
    Case("str-join-separator", "too costly", {"shots.toml": job("{{ ('y' * 99999).join('x' * 99999) }}")}),
    Case("str-replace-huge", "too costly", {"shots.toml": job("{{ ('x' * 99999).replace('x', 'y' * 99999) }}")}),
    Case("str-expandtabs", "too costly", {"shots.toml": job("{{ ('\\t' * 99999).expandtabs(99999) }}")}),
    Case("str-format-fields", "too costly", {"shots.toml": job("{{ ('{a}' * 20000).format(a='x' * 99999) }}")}),
    Case("percent-dict", "too costly", {"shots.toml": job("{{ ('%(a)s' * 20000) % dict(a='x' * 99999) }}")}),
    Case("str-translate", "too costly", {"shots.toml": job("{{ ('x' * 99999).translate({120: 'y' * 99999}) }}")}),
    Case("set-block-loop", "too costly", {"shots.toml": job("{% set b = 'x' * 99999 %}{% set y %}{% for i in range(90000) %}{{ b }}{% endfor %}{% endset %}{{ y|length }}")}),
    Case("macro-loop", "too costly", {"shots.toml": job("{% set b = 'x' * 99999 %}{% macro m() %}{% for i in range(90000) %}{{ b }}{% endfor %}{% endmacro %}{{ m()|length }}")}),
    Case("map-then-list", "too costly", {"shots.toml": job("{{ range(33333)|map('center', 99999)|list|length }}")}),
    Case("nested-list-printed", "too costly", {"shots.toml": job("{{ [['x' * 99999]] * 99999 }}")}),
    # --- filters and globals failing with what Jinja raises beside its own errors ---
    Case("truncate-end-too-long", "template error", {"shots.toml": job("{{ 'x'|truncate(5, end='yyyyyyy') }}")}),
    Case("dictsort-of-a-number", "template error", {"shots.toml": job("{{ 1|dictsort }}")}),
    Case("cycler-of-nothing", "template error", {"shots.toml": job("{{ cycler() }}")}),
]


def _run_forked(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, float, float]:
    """Run the CLI in a forked child; returns (exit code, output, seconds, peak RSS in MB).
    A child past WALL_GUARD is killed (exit -9)."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_fd)
            resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
            os.chdir(cwd)
            os.environ.update(env)
            from click.testing import CliRunner

            from vidbatch.cli import main

            result = CliRunner().invoke(main, args, catch_exceptions=True)
            out = result.output
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                out += f"\nTraceback (uncaught): {type(result.exception).__name__}: {result.exception}"
            payload = json.dumps({"code": result.exit_code, "out": out[-20000:]}).encode()
            with os.fdopen(write_fd, "wb") as w:
                w.write(payload)
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = started + WALL_GUARD
    with os.fdopen(read_fd, "rb") as r:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                data = os.read(r.fileno(), 1 << 16)
                if not data:
                    break
                chunks.append(data)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - started
    rss_mb = usage.ru_maxrss / 1024
    if not chunks:
        return (-9 if os.WIFSIGNALED(status) else -1), "", seconds, rss_mb
    doc = json.loads(b"".join(chunks))
    return doc["code"], doc["out"], seconds, rss_mb


def _tree(folder: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = p.read_bytes() if p.is_file() and not p.is_symlink() and p.stat().st_size < (1 << 20) else None
    return out


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_exits_2_untouched(case: Case, tmp_path: Path, sim_env) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name, content in case.files.items():
        path = work / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content) if not content.startswith(HEADER) else content, encoding="utf-8")
    if case.setup is not None:
        case.setup(work)
    before = _tree(work)
    env = {"MINIMAX_API_HOST": sim_env.base_url, "MINIMAX_API_KEY": TEST_KEY, **case.env}
    code, out, seconds, rss = _run_forked(["run", case.manifest, "--max-renders", "5", *case.args], work, env)
    assert code != -9, f"{case.id}: still running after {WALL_GUARD:.0f} s (a hang)"
    assert "Traceback" not in out, out
    assert code == 2, f"{case.id}: exit {code}: {out}"
    assert case.fragment in out, out
    assert rss < RSS_GUARD_MB, f"{case.id}: peak RSS {rss:.0f} MB"
    assert sum(sim_env.sim.calls.values()) == 0, "a bad input never reaches the API"
    assert _tree(work) == before, "a bad input writes nothing"
    for secret in (TEST_KEY, "ключ"):
        assert secret not in out
