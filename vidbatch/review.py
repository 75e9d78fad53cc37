"""``vidbatch review``: the report, served on loopback, with buttons that write the picks file.

The static report (:mod:`vidbatch.report`) shows every take and what was picked; reviewing is
clicking. This module serves the same page from a small :class:`http.server.ThreadingHTTPServer`
with pick, reject and clear buttons on each take of a shot with several takes. A click posts to
``/decide``; the server records it with :func:`vidbatch.picks.decide` (the picks file beside the
manifest, rewritten atomically) and the page reloads to show the file as it now is.

Safety: other pages in the same browser must not be able to write picks, and other machines must
not reach the server at all.

- It binds 127.0.0.1 only, and answers only requests whose ``Host`` is that address (a DNS
  rebinding page cannot pass for it).
- Every write carries the session token (random, made at start, only in the served page) in an
  ``X-Vidbatch-Token`` header with a JSON body: a cross-site form cannot set the header, and a
  cross-site ``fetch`` with it needs a CORS preflight this server never grants.
- It serves only the page and the files the page shows (the jobs' outputs, local input images,
  and what the last page built links to: cuts, posters, contact sheets, chained shots' frames),
  never anything else from the disk.

A decision names the video the page showed of its take (its sha256, from the state's record of
the file; null when the take had none), and a pick records that video. A run (or watch) may
render the take again after the page was loaded: a pick or reject of a take that no longer holds
the video shown is refused (409, nothing written) and the page offers to reload, so a pick never
stands for a render nobody saw.

Each page load builds the report afresh (state, picks and files as they are now); the manifests
are those loaded at start (restart to pick up manifest edits). The library never prints; the CLI
(:mod:`vidbatch.cli.review_cmd`) says where the page is and stops the server on Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import picks, report
from .errors import VidbatchError, VideoChangedError
from .manifest.model import image_refs
from .state import Store

if TYPE_CHECKING:  # pragma: no cover
    from .project import Workspace

log = logging.getLogger(__name__)

#: The only address the review server listens on.
HOST = "127.0.0.1"
#: Largest request body /decide reads (a decision is a few dozen bytes).
MAX_BODY = 64 * 1024
#: How a decision names the video the page showed of its take.
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ReviewServer:
    """The review page of ``ws`` on ``http://127.0.0.1:PORT/`` (``port=0``: a free port).

    Use as a context manager (serves on a thread) or call :meth:`serve_forever` (blocks)."""

    def __init__(self, ws: "Workspace", *, port: int = 0, token: str | None = None) -> None:
        self.ws = ws
        self.token = token or secrets.token_urlsafe(24)
        folders = [str(m.output_dir) for m in ws.manifests] + [str(Path(m.path).parent) for m in ws.manifests]
        #: the folder the page's links are relative to: every output and manifest lies below it
        self.base = Path(os.path.commonpath(folders))
        self.httpd = _Server((HOST, port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        #: the files the page last served links to (cuts, posters, contact sheets, chained
        #: shots' frames: what the jobs' outputs and images alone do not name)
        self._shown: frozenset[str] = frozenset()
        #: one decision at a time: each reads the picks file, changes it and writes it back, so
        #: two at once (two clicks, two tabs) would each write the file without the other's change
        self._deciding = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    # --- what the handler asks ----------------------------------------------------------------

    def page(self) -> str:
        """The report as it stands now, with the buttons and this session's token."""
        store = Store.open_for_reading(self.ws.state_dir)
        try:
            built = report.build_report(self.ws, store, self.base / "index.html")
        finally:
            if store is not None:
                store.close()
        built.review_token = self.token
        self._shown = _linked_files(built, self.base)
        return report.render_html(built)

    def served_file(self, url_path: str) -> Path | None:
        """The file behind ``url_path`` when it is one the page shows, else None."""
        relative = urllib.parse.unquote(url_path.lstrip("/"))
        if not relative:
            return None
        wanted = os.path.normpath(self.base / relative)
        allowed = {os.path.normpath(j.output) for j in self.ws.jobs}
        allowed |= {os.path.normpath(ref.path) for j in self.ws.jobs for ref in image_refs(j.request) if ref.path is not None}
        allowed |= self._shown
        return Path(wanted) if wanted in allowed and os.path.isfile(wanted) else None

    def decide(self, doc: Any) -> dict[str, Any]:
        """Record one decision posted by the page; raises ValueError or VidbatchError when it
        cannot be."""
        if not isinstance(doc, dict):
            raise ValueError("expected a JSON object")
        shot, take, decision, shown = doc.get("shot"), doc.get("take"), doc.get("decision"), doc.get("manifest")
        if not isinstance(shot, str) or not isinstance(take, int) or isinstance(take, bool):
            raise ValueError("expected shot (text) and take (a number)")
        try:
            what = picks.Decision(decision)
        except ValueError:
            raise ValueError(f"decision must be pick, reject or clear, not {decision!r}") from None
        manifest = next((m for m in self.ws.manifests if report._relative_display(Path(m.path), self.base) == shown), None)
        if manifest is None:
            raise ValueError(f"no manifest {shown!r} in this review")
        video = doc.get("video")
        if "video" not in doc or not (video is None or (isinstance(video, str) and _SHA256.fullmatch(video))):
            raise ValueError("expected video: the sha256 of the take's video the page showed (null: none); reload the page")
        with self._deciding:
            saved = picks.decide(manifest.path, manifest.jobs, shot, take, what, shown=video)
        log.info("review: %s take %s of %s (%s)", what.value, take, shot, saved.path)
        return {"shot": shot, "chosen": saved.chosen(shot), "rejected": sorted(saved.rejected(shot))}

    # --- running ------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "ReviewServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="vidbatch-review", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """The base class prints a traceback to stderr; a browser dropping a video load (or any
        client going away mid-answer) is routine, and anything else is one line."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("review: connection from %s ended with an error", client_address, exc_info=True)
        else:
            log.error("review: a request from %s failed: %r", client_address, error, exc_info=log.isEnabledFor(logging.DEBUG))


def _linked_files(built: "report.Report", base: Path) -> frozenset[str]:
    """The local files ``built`` links to (videos, posters, contact sheets, input images and
    chained shots' frames), as normalized paths; URLs with a scheme (https, data) are not files."""
    urls = [u for j in built.jobs for u in (j.video_src, j.poster_src, *(i.src for i in j.images))]
    urls += [u for c in built.cuts for u in (c.video_src, c.poster_src, c.sheet_src)]
    return frozenset(os.path.normpath(base / urllib.parse.unquote(u)) for u in urls if u and not urllib.parse.urlsplit(u).scheme)


def _handler(server: ReviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "vidbatch-review"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("review: " + format, *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, doc: dict[str, Any]) -> None:
            self._send(status, json.dumps(doc, ensure_ascii=False).encode("utf-8"), "application/json")

        def _host_ok(self) -> bool:
            host = (self.headers.get("Host") or "").strip()
            return host in (f"{HOST}:{server.port}", f"localhost:{server.port}")

        def do_GET(self) -> None:
            if not self._host_ok():
                self._json(403, {"error": "this server answers only at " + server.url})
                return
            path = urllib.parse.urlsplit(self.path).path
            if path in ("/", "/index.html"):
                try:
                    page = server.page()
                except VidbatchError as e:  # a bad picks file, say: show it, keep serving
                    self._send(500, f"vidbatch review: {e}\n".encode(), "text/plain; charset=utf-8")
                    return
                self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")
                return
            found = server.served_file(path)
            if found is None:
                self._json(404, {"error": "not found"})
                return
            kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
            self._send(200, found.read_bytes(), kind)

        do_HEAD = do_GET

        def do_POST(self) -> None:
            if not self._host_ok():
                self._json(403, {"error": "this server answers only at " + server.url})
                return
            if urllib.parse.urlsplit(self.path).path != "/decide":
                self._json(404, {"error": "not found"})
                return
            sent = self.headers.get("X-Vidbatch-Token") or ""
            if not secrets.compare_digest(sent.encode(), server.token.encode()):
                self._json(403, {"error": "missing or wrong session token; reload the page from the review server"})
                return
            if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                self._json(415, {"error": "expected application/json"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._json(400, {"error": "expected a small JSON body"})
                return
            try:
                doc = json.loads(self.rfile.read(length))
                self._json(200, server.decide(doc))
            except VideoChangedError as e:  # the take rendered again since the page was loaded
                self._json(409, {"error": str(e), "reload": True})
            except (ValueError, VidbatchError) as e:
                self._json(400, {"error": str(e)})

    return Handler
