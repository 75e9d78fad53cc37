"""Job identity: the contract that decides "already rendered" versus "render again".

A job's key is a tagged digest of the canonical JSON of its fully resolved, normalised request:

    key = "vb1:" + sha256(canonical_json(normalized_request)).hexdigest()

- canonical JSON: sorted keys, compact separators, UTF-8 (``ensure_ascii=False``);
- normalised (:func:`vidbatch.rules.normalized_request`): every applicable API default written out,
  fields that do not apply to the mode dropped, ``callback_url`` dropped;
- images by content: a local file or a data URL counts as ``"sha256:<hex>"`` of its bytes, so a
  moved file or re-encoded base64 text is the same image, and an edited image is a new request;
  a remote URL counts as the URL itself (its content cannot be known without fetching it).

Takes: a job with ``takes = N`` is N renders of one request, told apart by the take number
(1..:data:`MAX_TAKES`). Take 1's key is the request's key as above, so the one take of a job
without ``takes`` (and take 1 of a job given more takes later) keeps the key it always had. Take
N > 1 hashes the normalised request with one more member, ``"take": N`` (no API field is named
``take``, so no request can collide with it). The take number is never sent to the API.

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
#: Most takes one shot may have: each is a paid render, and nobody reviews more than a handful.
MAX_TAKES = 20


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_key(identity_request: Mapping[str, Any], take: int = 1) -> str:
    """The key of take ``take`` of a request whose images are already in identity form (see the
    module docstring)."""
    normal = rules.normalized_request(identity_request)
    if take != 1:
        normal = {**normal, "take": take}
    digest = hashlib.sha256(canonical_json(normal).encode("utf-8")).hexdigest()
    return f"{KEY_SCHEME}:{digest}"


def image_identity(sha256_hex: str) -> str:
    return f"sha256:{sha256_hex}"
