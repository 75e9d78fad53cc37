"""Manifests: from a TOML or JSON file on disk to a list of resolved, validated API requests.

No network, no state, no writes: loading a manifest only reads it, the templates it includes, its
foreach files and its images. Everything wrong with it is reported together, as
:class:`~vidbatch.errors.ManifestError` (exit code 2), before anything is sent or written.

The format is described once, by ``schemas/manifest.schema.json`` (shipped in this package and
used for the structural checks); the rules of the API are applied from :mod:`vidbatch.rules`.
The design, step by step, is in :mod:`.loader`; ``docs/manifest.md`` is the user's guide.

Modules:

- :mod:`.source`: parse TOML/JSON, map a value back to its line for error messages;
- :mod:`.schema`: run the JSON Schema, turn its errors into problems with "did you mean";
- :mod:`.rows`: ``matrix`` and ``foreach`` expansion rows (CSV, TSV, JSON, JSON Lines, inline);
- :mod:`.templates`: the sandboxed Jinja environment, compiled-once template cache, ``env``;
- :mod:`.model`: :class:`ImageRef`, :class:`Job`, :class:`Manifest`;
- :mod:`.loader`: the pipeline and the public entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import ImageRef, Job, Manifest, ManifestResult
from .source import is_manifest_file

if TYPE_CHECKING:
    from .loader import (
        DEFAULT_OUTPUT,
        DEFAULT_OUTPUT_DIR,
        TEMPLATED_FIELDS,
        check_manifests,
        check_output_collisions,
        group_problems,
        load_manifest,
        load_manifests,
        name_problem,
    )


__all__ = [
    "DEFAULT_OUTPUT",
    "DEFAULT_OUTPUT_DIR",
    "TEMPLATED_FIELDS",
    "ImageRef",
    "Job",
    "Manifest",
    "ManifestResult",
    "check_manifests",
    "check_output_collisions",
    "group_problems",
    "is_manifest_file",
    "load_manifest",
    "load_manifests",
    "name_problem",
]


def __getattr__(name: str) -> Any:
    # noop (issue 15): the loader (Jinja, the JSON Schema validator) is imported on first use, so
    # rebuilding cached jobs from vidbatch.manifest.model imports neither (vidbatch.jobcache).
    if name in __all__:
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
