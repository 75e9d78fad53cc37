"""The simulator's HTTP layer: routes requests to :class:`~vidbatch.sim.state.Simulator` and writes
its :class:`~vidbatch.sim.state.Reply` to the socket, faults included.

Built on the standard library's ``ThreadingHTTPServer`` (one thread per connection) so the
simulator adds no dependency. It speaks HTTP/1.1 with keep-alive, like the real service behind a
``requests.Session``; every answer carries ``Content-Length``, so a "drop" or "truncate" fault is
seen by the client exactly as a real broken connection would be.

It is also cheap per request, as it shares the machine with the run it serves (benchmarks'
``first-run``): a plain request is parsed by the handler rather than the email package (any odd
one still goes the standard library's way, see ``_Handler.parse_request``), and each answer
leaves in one send.

``stop()`` ends everything the server started before it returns: it stops accepting, cuts every
open connection (idle keep-alive ones included), wakes any answer a ``slow`` fault is holding back
(that answer is dropped) and joins every connection's thread. So a stopped simulator really stops
answering, and no thread of it lives on to log or write into whatever runs next.

Routes:

====================================  ======================================================
``POST /v1/video_generation``         create (``facts.PATH_CREATE``)
``GET /v1/query/video_generation``    query
``GET /v1/files/retrieve``            file metadata with signed, expiring download URLs
``GET /v1/files/retrieve_content``    the file's bytes
``GET /account/query_balance``        the account's balance (``SimConfig.balance``)
``POST /v1/files/upload``             upload a file (multipart); v2 requests name it ``mm_file://ID``
``POST /v2/video_generation``         v2 create (MiniMax-H3)
``GET /v2/query/video_generation/ID`` v2 query: ``{"task": TASK}``
``GET /v2/query/video_generation``    v2 list (``page_num``, ``page_size``, ``filter.*``)
``DELETE /v2/video_generation/ID``    v2 cancel (queued) or delete (finished)
``GET /_sim/download/<id>/<name>``    signed download URL (no Authorization needed)
``GET /_sim/backup/<id>/<name>``      signed backup download URL
``GET /_sim/video/<id>/<name>``       signed download URL of a v2 task's ``content.url``
``GET /_sim/stats``                   ``Simulator.stats()`` as JSON (control: no auth)
``POST /_sim/advance``                ``{"seconds": N}`` moves the sim clock (control)
``POST /_sim/faults``                 ``{"call", "fault", "times", ...params}`` (control)
``POST /_sim/second_client``          ``{"body": {...}}``: a v2 task made by a second client on
                                      the same account (control; ``Simulator.second_client_create``)
====================================  ======================================================

HTTPS: ``SimServer(..., tls=...)`` (a :class:`TlsFiles`, made by :func:`make_tls`) serves TLS
with a certificate issued by a CA that ``trustme`` generates; its PEM file is what a client
trusts (``REQUESTS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``). The handshake happens in the
connection's own thread, so a slow or broken client holds up no one else. Download URLs in
answers follow the scheme the server speaks.

One INFO line per API call goes to the ``vidbatch.sim`` logger: method, path (signed-URL query
strings left out), HTTP status, base_resp code, fault and Trace-Id. Headers are never logged, so
the key cannot leak into a log.
"""

from __future__ import annotations

import contextlib
import email.message
import email.parser
import email.policy
import http.client
import json
import logging
import os
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Iterator

from .. import facts, files
from .state import Reply, SimConfig, Simulator
from .video import CHUNK

log = logging.getLogger("vidbatch.sim")

_API_ROUTES = {
    ("POST", facts.PATH_CREATE): "create",
    ("GET", facts.PATH_QUERY): "query",
    ("GET", facts.PATH_RETRIEVE): "retrieve",
    ("GET", facts.PATH_RETRIEVE_CONTENT): "retrieve_content",
    ("GET", facts.PATH_BALANCE): "query_balance",
    ("POST", facts.PATH_FILE_UPLOAD): "upload",
    ("POST", facts.V2_PATH_CREATE): "v2_create",
    ("GET", facts.V2_PATH_QUERY): "v2_list",
}
#: Routes whose last path segment is a task id: ``(method, prefix) -> call``.
_TASK_ROUTES = {
    ("GET", facts.V2_PATH_QUERY + "/"): "v2_query",
    ("DELETE", facts.V2_PATH_TASK + "/"): "v2_cancel",
}
#: Calls whose body is JSON (anything else is answered as 2013 by the simulator).
_JSON_BODY_CALLS = frozenset({"create", "v2_create"})
_URL_ROUTES = {"download": "download", "backup": "backup_download", "video": "v2_download"}
#: Bodies larger than this are refused before reading (data-URL images are under 20 MB, base64 grows 4/3).
_MAX_BODY = 64 * 1024 * 1024
#: Idle keep-alive connections are closed after this many seconds.
_IDLE_TIMEOUT = 60.0
#: A TLS handshake that takes longer than this ends the connection.
_HANDSHAKE_TIMEOUT = 10.0
#: Limits of a request's header block, the same as ``http.client`` puts on it (431 beyond them).
_MAX_HEADER_LINE = 65536
_MAX_HEADERS = 100
#: A header line the email package would parse as ``name: value`` and nothing else: a name of
#: RFC 5322 field characters, no folding, no stray CR inside (any other line takes its path).
_PLAIN_FIELD = re.compile(r"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*)\r?\n")


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate for the simulator and the CA that issued it, as PEM files."""

    ca_file: Path  # what a client trusts: REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, SSL_CERT_FILE
    cert_file: Path  # the server's certificate chain
    key_file: Path  # its private key

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


#: Names every simulator certificate is valid for (a client on the same machine uses one of them).
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def make_tls(folder: Path, host: str = "127.0.0.1") -> TlsFiles:
    """A CA (made with ``trustme``) and a certificate it issues for the loopback names and
    ``host``, written to ``folder``. A CA already in the folder is kept, so a client that trusts
    its file goes on trusting a simulator restarted on the same data folder."""
    import trustme  # a few hundred ms (cryptography): only when HTTPS is asked for

    folder.mkdir(parents=True, exist_ok=True)
    ca_file, ca_key = folder / "ca.pem", folder / "ca-key.pem"
    if ca_file.exists() and ca_key.exists():
        ca = trustme.CA.from_pem(ca_file.read_bytes(), ca_key.read_bytes())
    else:
        ca = trustme.CA(organization_name="vidbatch simulator")
        _write_private(ca_key, ca.private_key_pem.bytes())
        files.write_bytes(ca_file, ca.cert_pem.bytes())
    names = list(_LOOPBACK_NAMES)
    if host not in names and host not in ("", "0.0.0.0", "::"):
        names.append(host)
    cert = ca.issue_cert(*names)
    cert_file, key_file = folder / "server.pem", folder / "server-key.pem"
    _write_private(key_file, cert.private_key_pem.bytes())
    files.write_bytes(cert_file, b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return TlsFiles(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class _Server(ThreadingHTTPServer):
    # Daemon threads, so that a thread stuck beyond stop()'s join never holds the interpreter
    # open; stop() still joins them, tracked here (ThreadingMixIn only tracks non-daemon ones).
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: socketserver's 5 overflowed when a run opened its 32+ connections at
    # once, and the kernel reset some of them (creates "sent, answer lost": uncertain).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: Simulator, ssl_context: ssl.SSLContext | None = None) -> None:
        self.sim = sim
        #: With a context, every connection speaks TLS (wrapped in its own thread).
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"
        self.open_connections: set[socket.socket] = set()
        self.handler_threads: set[threading.Thread] = set()
        self.connections_lock = threading.Lock()
        #: Set by stop(): wakes delayed answers, and cuts a connection whose thread starts late.
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """One named thread per connection, tracked until it ends so stop() can join it."""
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"vidbatch-sim:{self.server_address[1]}:connection",
            daemon=True,
        )
        with self.connections_lock:
            self.handler_threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            if self.ssl_context is not None:
                try:
                    request.settimeout(_HANDSHAKE_TIMEOUT)
                    request = self.ssl_context.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):  # a client that does not speak TLS, or went away
                    log.debug("TLS handshake with %s failed", client_address, exc_info=True)
                    self.shutdown_request(request)
                    return
            self.process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.handler_threads.discard(threading.current_thread())

    def live_handler_threads(self) -> list[threading.Thread]:
        with self.connections_lock:
            return [t for t in self.handler_threads if t.is_alive()]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The base class prints a traceback to stderr; a client going away mid-answer is routine."""
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    #: The request's headers: each one's first value by its lower-case name (see parse_request).
    fields: dict[str, str]
    raw_requestline: bytes  # set by the base class's handle_one_request
    #: The last ``Date`` header made: (Unix second, its text), shared by every connection.
    _date: ClassVar[tuple[int, str]] = (-1, "")
    protocol_version = "HTTP/1.1"
    server_version = "vidbatch-sim"
    timeout = _IDLE_TIMEOUT
    # Answers are written through a buffer that holds a head and a whole chunk of video, and
    # flushed once per answer (end of _send, or the base class after each request): a small answer
    # leaves in one send, not one for the head and one for the body (the socketserver default
    # writes straight to the socket, a system call per write).
    wbufsize = CHUNK + 16 * 1024
    # A large body still goes out in several sends; with Nagle's algorithm and delayed ACKs the
    # last small one would wait ~40 ms.
    disable_nagle_algorithm = True

    # -- connection bookkeeping (so stop() can close keep-alive connections) --

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)
            if self.server.stopping.is_set():  # accepted just before stop(): end it at once
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def handle_expect_100(self) -> bool:
        """The base class's ``100 Continue``, sent now: the client waits for it before the body."""
        if not super().handle_expect_100():
            return False
        self.wfile.flush()
        return True

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The base class's ``Date`` header, formatted once a second (it names the second) rather
        than once an answer."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        last_second, text = _Handler._date
        if last_second != second:
            text = super().date_time_string(second)
            _Handler._date = (second, text)  # one tuple: threads read a pair that belongs together
        return text

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The simulator logs its own line per call (without signed-URL query strings)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """The base class writes errors (timeouts, bad request lines) to stderr; log them instead."""
        log.debug("http %s: %s", self.address_string(), format % args)

    # -- reading a request --

    def parse_request(self) -> bool:
        """The base class's parse of the request line and headers, without its cost for the
        requests a client sends: ``METHOD PATH HTTP/1.1`` and plain ``name: value`` header lines.

        The base class hands every header block to the email package (a feed parser, policies,
        a message object), which was a sixth of the simulator's CPU per request. Here a plain
        block becomes the same ``HTTPMessage`` (the same names and values, in order); a request
        line or a header line of any other shape goes the base class's way, so odd requests get
        the answers they always got. ``self.fields`` holds each header's first value by its
        lower-case name (what ``headers.get`` answers), for the handler's own look-ups."""
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] != "HTTP/1.1" or words[1].startswith("//"):
            if not super().parse_request():
                return False
            self.fields = _first_values(self.headers)
            return True
        self.requestline = requestline
        self.command, self.path = words[0], words[1]
        self.request_version = words[2]
        self.close_connection = False  # HTTP/1.1 on both sides: keep-alive unless asked otherwise
        try:
            lines = _read_header_lines(self.rfile)
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        self.headers, self.fields = _parse_header_lines(lines, self.MessageClass)
        # What the base class does next, read from the fields.
        conntype = self.fields.get("connection", "").lower()
        if conntype == "close":
            self.close_connection = True
        elif conntype == "keep-alive":
            self.close_connection = False
        if self.fields.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    # -- routing --

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        try:
            raw = self._read_body()
        except ValueError as e:
            self._send(Reply(status=413, json={"error": str(e)}))
            self.close_connection = True
            return
        if url.path.startswith("/_sim/"):
            parts = url.path.split("/")  # ["", "_sim", kind, file_id, name]
            call = _URL_ROUTES.get(parts[2]) if len(parts) == 5 and method in ("GET", "HEAD") else None
            if call:
                params["file_id"] = parts[3]
                self._answer(call, method, url.path, params, None)
            else:
                self._control(method, url.path, raw)
            return
        call = _API_ROUTES.get((method, url.path)) or _task_route(method, url.path, params)
        if call is None:
            self._send(Reply(status=404, json={"error": f"no route {method} {url.path}"}))
            return
        body: Any = None
        if call in _JSON_BODY_CALLS:
            try:
                body = json.loads(raw or b"null")
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None  # answered as 2013 by the simulator
        elif call == "upload":
            body = _parse_upload(self.fields.get("content-type") or "", raw)
        log_path = url.path + (f"?{url.query}" if url.query else "")
        self._answer(call, method, log_path, params, body)

    def _read_body(self) -> bytes:
        length = int(self.fields.get("content-length") or 0)
        if length > _MAX_BODY:
            raise ValueError(f"request body of {length} bytes is too large")
        return self.rfile.read(length) if length > 0 else b""

    def _base_url(self) -> str:
        scheme = self.server.scheme
        host = self.fields.get("host")
        if host:
            return f"{scheme}://{host}"
        address, port = self.server.server_address[:2]
        name = address.decode() if isinstance(address, bytes) else address
        return f"{scheme}://{name}:{port}"

    def _answer(self, call: str, method: str, log_path: str, params: dict[str, str], body: Any) -> None:
        reply = self.server.sim.handle(
            call,
            params=params,
            body=body,
            authorization=self.fields.get("authorization"),
            base_url=self._base_url(),
        )
        trace_id = secrets.token_hex(16)
        if reply.delay > 0 and self.server.stopping.wait(reply.delay):
            reply.drop = True  # the simulator stopped while this answer was held back
        status = "dropped" if reply.drop else str(reply.status)
        log.info(
            "%s %s %s %s base_resp=%s%s trace=%s",
            call,
            method,
            log_path,
            status,
            "-" if reply.base_code is None else reply.base_code,
            f" fault={reply.fault}" if reply.fault else "",
            trace_id,
        )
        if reply.drop:
            self._drop()
            return
        reply.headers.setdefault("Trace-Id", trace_id)
        self._send(reply, head_only=method == "HEAD")

    def _drop(self) -> None:
        """Close the connection without a byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: Reply, head_only: bool = False) -> None:
        if reply.video is not None:
            length = reply.video.size
        else:
            payload = (json.dumps(reply.json) if reply.json is not None else reply.text).encode("utf-8")
            length = len(payload)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if head_only:
            return
        try:
            if reply.video is not None:
                for chunk in reply.video.chunks(reply.truncate_at):
                    self.wfile.write(chunk)
            else:
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:  # the client went away mid-answer, or stop() closed the connection
            self.close_connection = True
            return
        if reply.truncate_at is not None:
            self._drop()

    # -- control endpoints --

    def _control(self, method: str, path: str, raw: bytes) -> None:
        sim = self.server.sim
        try:
            args = json.loads(raw) if raw else {}
            if not isinstance(args, dict):
                raise ValueError("the body must be a JSON object")
            if (method, path) == ("GET", "/_sim/stats"):
                answer: dict[str, Any] = sim.stats()
            elif (method, path) == ("POST", "/_sim/advance"):
                sim.advance(float(args.get("seconds", 0)))
                answer = {"clock": sim.now()}
            elif (method, path) == ("POST", "/_sim/faults"):
                args = dict(args)
                call, fault, times = args.pop("call", ""), args.pop("fault", ""), int(args.pop("times", 1))
                sim.inject(str(call), str(fault), times, **args)
                answer = {"faults_pending": sim.stats()["faults_pending"]}
            elif (method, path) == ("POST", "/_sim/second_client"):
                body = args.get("body")
                if body is not None and not isinstance(body, dict):
                    raise ValueError("body must be a v2 create request (a JSON object)")
                answer = {"task_id": sim.second_client_create(body)}
            else:
                self._send(Reply(status=404, json={"error": f"no control endpoint {method} {path}"}))
                return
        except (ValueError, TypeError) as e:
            self._send(Reply(status=400, json={"error": str(e)}))
            return
        self._send(Reply(json=answer))


class SimServer:
    """A simulator serving HTTP on a loopback port, in a background thread."""

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0, tls: TlsFiles | None = None) -> None:
        self.sim = sim
        self.tls = tls
        self._httpd = _Server((host, port), sim, tls.ssl_context() if tls is not None else None)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.host = str(bound_host)
        self.port = int(bound_port)
        self.scheme = self._httpd.scheme
        self.base_url = f"{self.scheme}://{self.host}:{self.port}"
        #: The key to send: the configured one, or (when the sim takes any) the one its store made up.
        self.key = sim.client_key
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"vidbatch-sim:{self.port}",
            daemon=True,
        )
        self._stopped = False

    def start(self, wait: float = 10.0) -> None:
        """Serve in the background; return once the server answers (or raise after ``wait`` s)."""
        self._thread.start()
        deadline = time.monotonic() + wait
        while True:
            try:
                conn: http.client.HTTPConnection
                if self.tls is not None:
                    trust = ssl.create_default_context(cafile=str(self.tls.ca_file))
                    conn = http.client.HTTPSConnection(self.host, self.port, timeout=1, context=trust)
                else:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=1)
                conn.request("GET", "/_sim/stats")
                conn.getresponse().read()
                conn.close()
                return
            except (OSError, ssl.SSLError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.02)

    def stop(self, wait: float = 10.0) -> None:
        """Stop serving, close every connection (idle keep-alive ones included) and wait up to
        ``wait`` s for every connection's thread to end; a held-back (``slow``) answer is dropped."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        with self._httpd.connections_lock:
            self._httpd.stopping.set()
            connections = list(self._httpd.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + wait
        for thread in self._httpd.live_handler_threads():
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = self._httpd.live_handler_threads()
        if stuck:
            log.warning("simulator on port %d stopped with %d connection thread(s) still running", self.port, len(stuck))
        self._httpd.server_close()

    @property
    def ca_file(self) -> Path | None:
        """The CA file a client must trust (HTTPS only): REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS."""
        return self.tls.ca_file if self.tls is not None else None

    def handler_threads(self) -> list[threading.Thread]:
        """The threads still serving a connection (none once ``stop()`` has returned)."""
        return self._httpd.live_handler_threads()

    def __repr__(self) -> str:
        return f"<SimServer {self.base_url}>"


@contextlib.contextmanager
def running_simulator(
    config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0, *, https: bool = False
) -> Iterator[SimServer]:
    """A simulator serving real HTTP on ``host:port`` (port 0: a free one) for the ``with`` block.

    With ``config.data_dir`` its tasks outlive the block: a later simulator on the same folder,
    in this process or another, answers for them (see :mod:`vidbatch.sim.store`).

    With ``https`` it serves TLS with a certificate from a CA it generates (``server.ca_file``):
    kept in ``<data_dir>/tls`` when there is a data folder (a restarted simulator keeps its CA),
    else in a temporary folder removed after the block."""
    sim = Simulator(config)
    scratch: str | None = None
    try:
        tls = None
        if https:
            data_dir = sim.config.data_dir
            if data_dir is not None:
                folder = Path(data_dir) / "tls"
            else:
                scratch = tempfile.mkdtemp(prefix="vidbatch-sim-tls-")
                folder = Path(scratch)
            tls = make_tls(folder, host)
        server = SimServer(sim, host, port, tls=tls)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        sim.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _read_header_lines(rfile: Any) -> list[bytes]:
    """A request's header lines up to and including the blank line (or end of input), within
    the limits ``http.client`` sets, raising its errors beyond them."""
    lines: list[bytes] = []
    while True:
        line = rfile.readline(_MAX_HEADER_LINE + 1)
        if len(line) > _MAX_HEADER_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def _parse_header_lines(lines: list[bytes], message_class: Any) -> tuple[http.client.HTTPMessage, dict[str, str]]:
    """The header block as ``http.client.parse_headers`` parses it, and each header's first
    value by lower-case name. Plain ``name: value`` lines are split here; a block with any
    other line (folded, a stray CR, no colon, a name outside RFC 5322) is parsed by the email
    package, as the base class does."""
    message: http.client.HTTPMessage = message_class()
    fields: dict[str, str] = {}
    for line in lines[:-1]:  # the last is the blank line (or the end of input)
        plain = _PLAIN_FIELD.fullmatch(line.decode("iso-8859-1"))
        if plain is None:
            text = b"".join(lines).decode("iso-8859-1")
            message = email.parser.Parser(_class=message_class).parsestr(text)
            return message, _first_values(message)
        name, value = plain.group(1, 2)
        message.set_raw(name, value)
        fields.setdefault(name.lower(), value)
    return message, fields


def _first_values(message: email.message.Message) -> dict[str, str]:
    """Each header's first value by lower-case name: what ``message.get(name)`` answers."""
    fields: dict[str, str] = {}
    for name, value in message.items():
        fields.setdefault(name.lower(), str(value))
    return fields


def _task_route(method: str, path: str, params: dict[str, str]) -> str | None:
    """The call of a route that ends in a task id (``/v2/query/video_generation/ID``); the id
    goes into ``params["task_id"]``."""
    for (route_method, prefix), call in _TASK_ROUTES.items():
        if method == route_method and path.startswith(prefix):
            task_id = urllib.parse.unquote(path[len(prefix) :])
            if task_id and "/" not in task_id:
                params["task_id"] = task_id
                return call
    return None


def _parse_upload(content_type: str, raw: bytes) -> dict[str, Any] | None:
    """A multipart/form-data upload as ``{"filename", "purpose", "data"}``; None when it is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1") + raw
    )
    if not message.is_multipart():
        return None
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name == "file" and isinstance(payload, bytes):
            form["data"] = payload
            form["filename"] = part.get_filename() or "file"
        elif name == "purpose" and isinstance(payload, bytes):
            form["purpose"] = payload.decode("utf-8", "replace")
    return form
