"""The shared test helpers themselves: importing them does nothing but define names."""

from __future__ import annotations

import subprocess
import sys

from .helpers import ROOT, cli, png_bytes


def test_importing_the_helpers_runs_no_script():
    code = "import sys, tests.helpers, tests.manifest_helpers; print('vidbatch_example_images' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_one_png_writer_matches_the_examples_encoder():
    from .helpers import _example_images

    assert png_bytes(4, 3, (1, 2, 3)) == _example_images().solid_png_bytes(4, 3, (1, 2, 3))


def test_cli_takes_a_list_or_separate_arguments():
    assert cli(["--version"]).output == cli("--version").output != ""
