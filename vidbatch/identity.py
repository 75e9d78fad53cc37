"""Job identity: the contract that decides "already rendered" versus "render again".

A job's key is a tagged digest of the canonical JSON of its fully resolved, normalised request:

    key = "vb1:" + sha256(canonical_json(normalized_request)).hexdigest()

- canonical JSON: sorted keys, compact separators, UTF-8 (``ensure_ascii=False``);
- normalised (:func:`vidbatch.rules.normalized_request`): every applicable API default written out,
  fields that do not apply to the mode dropped, ``callback_url`` dropped;
- images by content: a local file or a data URL counts as ``"sha256:<hex>"`` of its bytes, so a
  moved file or re-encoded base64 text is the same image, and an edited image is a new request;
  a remote URL counts as the URL itself (its content cannot be known without fetching it).

Not part of the key: the job's name, its output path, the manifest's formatting, comments, key
order and unused variables. The ``vb1`` tag names this scheme; a future change of scheme gets a new
tag, so old keys are recognisably old instead of silently different.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from . import rules

KEY_SCHEME = "vb1"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_key(identity_request: Mapping[str, Any]) -> str:
    """The key of a request whose images are already in identity form (see module docstring)."""
    normal = rules.normalized_request(identity_request)
    digest = hashlib.sha256(canonical_json(normal).encode("utf-8")).hexdigest()
    return f"{KEY_SCHEME}:{digest}"


def image_identity(sha256_hex: str) -> str:
    return f"sha256:{sha256_hex}"
