"""The names the manifest tests import; they live in :mod:`tests.helpers` (the one home of each
test helper)."""

from __future__ import annotations

from .helpers import BAD, EXAMPLES, ROOT, cli, jpeg, png, png_bytes, write

__all__ = ["BAD", "EXAMPLES", "ROOT", "cli", "jpeg", "png", "png_bytes", "write"]
