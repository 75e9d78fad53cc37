#!/usr/bin/env python3
"""Benchmark: load, expand and validate a 10,000-job manifest.

    python benchmarks/bench_manifest.py [--jobs 10000] [--repeat 5]

The manifest is generated in a temporary folder: half the jobs come from a text-to-video matrix
(4 keys), half from the rows of a CSV file driving image-to-video jobs over 20 local images, with a
prompt that includes a template file. Loading it reads the TOML, checks it against the JSON Schema,
expands both tables, renders every name/prompt/output/image template, checks each request against
the API facts, checks each image once, and computes each job's key.

It also counts how often templates are compiled and images read: each distinct template string
should compile once per load and each image be read once, however many jobs use them. Template
compilations are counted where they happen (``Templates.compile``, which turns plain
``{{ variable }}`` substitutions into a fast form and hands everything else to Jinja, and Jinja's
own ``compile`` for included files); image reads by wrapping ``vidbatch.images.inspect_file``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment

from vidbatch import images
from vidbatch.manifest import load_manifest
from vidbatch.manifest.templates import Templates

HERE = Path(__file__).resolve().parent
N_IMAGES = 20


def _image_writer():
    spec = importlib.util.spec_from_file_location("make_images", HERE.parent / "examples" / "make_images.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def build(folder: Path, jobs: int) -> tuple[Path, int]:
    """Write the manifest, its CSV, template and images; returns (manifest, distinct templates)."""
    half = jobs // 2
    subjects = [f"subject{i}" for i in range(10)]
    places = [f"place{i}" for i in range(10)]
    lights = [f"light{i}" for i in range(max(1, half // 200))]
    matrix_jobs = len(subjects) * len(places) * len(lights) * 2
    csv_rows = jobs - matrix_jobs

    make = _image_writer()
    for i in range(N_IMAGES):
        shade = 40 + i * 9
        make.write_png(folder / "images" / f"img{i:02d}.png", 640, 360, lambda x, y, s=shade: (s, 255 - s, (x // 40) * 12 % 256))
    (folder / "style.j2").write_text("{{ look }}, shot {{ id }} of the storyboard")
    with open(folder / "rows.csv", "w", encoding="utf-8") as f:
        f.write("id,image,action,camera\n")
        cameras = ["[Push in]", "[Pan left]", "[Tracking shot]", "[Static shot]"]
        for i in range(csv_rows):
            f.write(f"{i:05d},img{i % N_IMAGES:02d}.png,A figure walks through scene {i},{cameras[i % 4]}\n")
    manifest = folder / "big.toml"
    manifest.write_text(
        f"""
output_dir = "renders"

[defaults]
model = "MiniMax-Hailuo-02"
duration = 6

[vars]
look = "golden hour, 35mm"

[[jobs]]
name = "{{{{ subject }}}}-{{{{ place }}}}-{{{{ light }}}}-{{{{ resolution }}}}"
prompt = "A {{{{ subject }}}} in {{{{ place }}}} under {{{{ light }}}}, {{{{ look }}}} [Truck left]"
matrix = {{ subject = {subjects!r}, place = {places!r}, light = {lights!r}, resolution = ["768P", "1080P"] }}

[[jobs]]
name = "row-{{{{ id }}}}"
first_frame_image = "images/{{{{ image }}}}"
prompt = "{{{{ action }}}}, {{% include 'style.j2' %}} {{{{ camera }}}}"
foreach = "rows.csv"
"""
    )
    # name and prompt of each table, first_frame_image, and style.j2 (the default output,
    # "{{ name }}.mp4", is filled in without Jinja)
    return manifest, 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    compiles = jinja_compiles = 0
    original_compile = Templates.compile
    original_jinja_compile = ImmutableSandboxedEnvironment.compile
    compiled_sources: list[str] = []

    def counting_compile(self, source):
        nonlocal compiles
        misses = self.compilations
        result = original_compile(self, source)
        if self.compilations != misses:
            compiles += 1
            compiled_sources.append(source)
        return result

    def counting_jinja_compile(self, source, name=None, filename=None, *a, **kw):
        nonlocal compiles, jinja_compiles
        jinja_compiles += 1
        if filename is not None:  # an included file, loaded by Jinja itself
            compiles += 1
            compiled_sources.append(filename)
        return original_jinja_compile(self, source, name, filename, *a, **kw)

    reads = 0
    original_inspect = images.inspect_file

    def counting_inspect(path):
        nonlocal reads
        reads += 1
        return original_inspect(path)

    Templates.compile = counting_compile  # type: ignore[method-assign]
    ImmutableSandboxedEnvironment.compile = counting_jinja_compile  # type: ignore[method-assign]
    images.inspect_file = counting_inspect  # type: ignore[assignment]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest_path, distinct_templates = build(folder, args.jobs)
        size = manifest_path.stat().st_size + (folder / "rows.csv").stat().st_size
        times = []
        cpu_times = []
        per_load = []
        for _ in range(args.repeat):
            compiles = jinja_compiles = reads = 0
            compiled_sources.clear()
            start, cpu_start = time.perf_counter(), time.process_time()
            manifest = load_manifest(manifest_path, environ={})
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
            per_load.append((compiles, reads, jinja_compiles))
        # the share of job keys (vidbatch.identity), recomputed on their own
        from vidbatch.identity import content_key

        identities = [j.identity_request() for j in manifest.jobs]
        start = time.process_time()
        for identity in identities:
            content_key(identity)
        key_time = time.process_time() - start
        jobs = len(manifest.jobs)
        assert jobs == args.jobs, jobs
        modes = {j.mode.value for j in manifest.jobs}
        keys = len({j.key for j in manifest.jobs})

    print(f"vidbatch manifest benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"  manifest: {jobs:,} jobs from 2 tables (a 4-key matrix, CSV rows), modes {sorted(modes)}, {size / 1024:.0f} KB of TOML+CSV")
    print(f"  load+expand+validate: best {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms, "
          f"first {times[0] * 1000:.0f} ms over {len(times)} runs ({jobs / min(times):,.0f} jobs/s)")
    print(f"  CPU time: best {min(cpu_times) * 1000:.0f} ms, median {statistics.median(cpu_times) * 1000:.0f} ms "
          "(wall time also counts other processes on a shared machine)")
    print(f"  of which job keys (identity.content_key, recomputed alone): {key_time * 1000:.0f} ms")
    print(f"  distinct keys: {keys:,}")
    print(f"  template compilations per load: {per_load[-1][0]} (distinct templates: {distinct_templates}; "
          f"{per_load[-1][2]} of them by Jinja, the rest plain substitutions)")
    for source in compiled_sources:
        print(f"    {Path(source).name if source.endswith('.j2') else source}")
    print(f"  image files read per load: {per_load[-1][1]} (distinct images: {N_IMAGES})")
    ok = all(c == distinct_templates and r == N_IMAGES for c, r, _ in per_load)
    print("  each template compiled once, each image read once: " + ("yes" if ok else "NO"))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
