"""Job identity: the contract that decides "already rendered" versus "render again".

A job's key is a tagged digest of the canonical JSON of its fully resolved, normalised request:

    key = "vb1:" + sha256(canonical_json(normalized_request)).hexdigest()       # v1 models
    key = "vb1-v2:" + sha256(canonical_json(normalized_v2_body)).hexdigest()    # MiniMax-H3 (V2)

- canonical JSON: sorted keys, compact separators, UTF-8 (``ensure_ascii=False``);
- normalised (:func:`vidbatch.rules.normalized_request`): every applicable API default written out,
  fields that do not apply to the mode dropped, ``callback_url`` dropped;
- images by content: a local file or a data URL counts as ``"sha256:<hex>"`` of its bytes, so a
  moved file or re-encoded base64 text is the same image, and an edited image is a new request;
  a remote URL counts as the URL itself (its content cannot be known without fetching it).

A V2 request (Video Generation V2: MiniMax-H3) follows the same contract over its create body
(:func:`vidbatch.rules.normalized_v2_body` of :func:`vidbatch.rules.v2_body`): the ``content``
list in its fixed order (text, first frame, last frame, reference images, videos, audios, each
list in its own order), ``duration``, ``resolution`` and, with media, ``ratio`` written out,
``callback_url`` dropped; every medium (image, video, audio) by the hash of its bytes, a public
URL or an ``mm_file://`` id the user wrote as itself. How a medium travels (inline as a data URL,
or uploaded once and sent as ``mm_file://ID``) is not part of the key. Its tag, ``vb1-v2``, differs
from the v1 tag, so an H3 key can never equal a v1 key, whatever the two requests hash to; v1
keys are unchanged by V2's arrival.

Takes: a job with ``takes = N`` is N renders of one request, told apart by the take number
(1..:data:`MAX_TAKES`). Take 1's key is the request's key as above, so the one take of a job
without ``takes`` (and take 1 of a job given more takes later) keeps the key it always had. Take
N > 1 hashes the normalised request with one more member, ``"take": N`` (no API field is named
``take``, so no request can collide with it). The take number is never sent to the API. Takes
of a V2 request work the same way, over its normalised body.

Not part of the key: the job's name, its output path, the manifest's formatting, comments, key
order and unused variables. The ``vb1`` tag names this scheme; a future change of scheme gets a new
tag, so old keys are recognisably old instead of silently different.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from . import rules
from .facts import Api

KEY_SCHEME = "vb1"
#: The tag of a V2 request's key: the same scheme, over the V2 body.
V2_KEY_SCHEME = "vb1-v2"
#: Most takes one shot may have: each is a paid render, and nobody reviews more than a handful.
MAX_TAKES = 20


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_key(identity_request: Mapping[str, Any], take: int = 1) -> str:
    """The key of take ``take`` of a request whose media are already in identity form (see the
    module docstring): a v1 request, or a V2 one (a body, or vidbatch's flat form of one)."""
    normal = rules.normalized_request(identity_request)
    if take != 1:
        normal = {**normal, "take": take}
    digest = hashlib.sha256(canonical_json(normal).encode("utf-8")).hexdigest()
    tag = V2_KEY_SCHEME if rules.api_of(identity_request) is Api.V2 else KEY_SCHEME
    return f"{tag}:{digest}"


def image_identity(sha256_hex: str) -> str:
    return f"sha256:{sha256_hex}"
