"""The simulator's HTTP layer reads requests and writes answers as the standard library's own
``BaseHTTPRequestHandler`` does, odd requests included.

The handler parses plain requests itself (the email package's parser was the largest part of
the simulator's CPU per request) and writes each answer in one send. These tests hold it to the
standard library: the same raw bytes sent to the simulator and to a twin whose handler uses the
base class's parsing and unbuffered writes get the same answer bytes (``Date`` and ``Trace-Id``
aside), and the header parser gives what ``http.client.parse_headers`` gives, line for line.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import json
import socket
import ssl
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from vidbatch import facts
from vidbatch.sim import SimConfig, SimServer, running_simulator
from vidbatch.sim import server as sim_server

from .conftest import TEST_KEY


class _StdlibHeaders:
    """What the handler read before: ``self.headers.get``, case-insensitive, first value."""

    def __init__(self, message: http.client.HTTPMessage) -> None:
        self._message = message

    def get(self, name: str, default: Any = None) -> Any:
        return self._message.get(name, default)


class _StdlibHandler(sim_server._Handler):
    """The simulator's handler with the base class's request parsing, ``Date`` and unbuffered
    writes: the simulator as it was before its HTTP layer was made cheaper."""

    wbufsize = 0
    date_time_string = BaseHTTPRequestHandler.date_time_string
    handle_expect_100 = BaseHTTPRequestHandler.handle_expect_100

    def parse_request(self) -> bool:
        if not BaseHTTPRequestHandler.parse_request(self):
            return False
        self.fields = _StdlibHeaders(self.headers)  # type: ignore[assignment]
        return True


@pytest.fixture
def twin() -> Iterator[SimServer]:
    """A second simulator (same key) whose connections are served by ``_StdlibHandler``."""
    with running_simulator(SimConfig(key=TEST_KEY)) as server:
        server._httpd.RequestHandlerClass = _StdlibHandler
        yield server


def exchange(server: SimServer, raw: bytes) -> bytes:
    """Send ``raw`` on a fresh connection, say that is all, and return every byte answered."""
    with socket.create_connection((server.host, server.port), timeout=10) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def comparable(answer: bytes) -> bytes:
    """An answer without the lines that differ between two simulators or two seconds."""
    return b"\r\n".join(
        line for line in answer.split(b"\r\n") if not line.startswith((b"Date: ", b"Trace-Id: "))
    )


QUERY = f"{facts.PATH_QUERY}?task_id=nope"
AUTH = f"Authorization: Bearer {TEST_KEY}\r\n"
#: Raw requests whose answers depend on what the server read: a query of an unknown task answers
#: 1004 (no key seen), 2049 (a wrong key seen) or 2013 (the right key seen, no such task).
RAW_REQUESTS: dict[str, str] = {
    "plain": f"GET {QUERY} HTTP/1.1\r\nHost: sim\r\n{AUTH}Accept: */*\r\n\r\n",
    "no headers": f"GET {QUERY} HTTP/1.1\r\n\r\n",
    "lower-case name": f"GET {QUERY} HTTP/1.1\r\nauthorization: Bearer {TEST_KEY}\r\n\r\n",
    "upper-case name": f"GET {QUERY} HTTP/1.1\r\nAUTHORIZATION: Bearer {TEST_KEY}\r\n\r\n",
    "duplicate, wrong first": f"GET {QUERY} HTTP/1.1\r\nAuthorization: Bearer wrong\r\n{AUTH}\r\n",
    "duplicate, right first": f"GET {QUERY} HTTP/1.1\r\n{AUTH}Authorization: Bearer wrong\r\n\r\n",
    "spaces and tabs": f"GET {QUERY} HTTP/1.1\r\nAuthorization: \t  Bearer {TEST_KEY} \t\r\n\r\n",
    "no space after colon": f"GET {QUERY} HTTP/1.1\r\nAuthorization:Bearer {TEST_KEY}\r\n\r\n",
    "empty value": f"GET {QUERY} HTTP/1.1\r\nAuthorization:\r\n\r\n",
    "bare LF": f"GET {QUERY} HTTP/1.1\nHost: sim\n{AUTH.strip()}\n\n",
    "folded value": f"GET {QUERY} HTTP/1.1\r\nAuthorization: Bearer\r\n {TEST_KEY}\r\n\r\n",
    "first line folded": f"GET {QUERY} HTTP/1.1\r\n  stray\r\n{AUTH}\r\n",
    "unix from line": f"GET {QUERY} HTTP/1.1\r\nFrom someone\r\n{AUTH}\r\n",
    "line without colon": f"GET {QUERY} HTTP/1.1\r\nGarbage\r\n{AUTH}\r\n",
    "space in name": f"GET {QUERY} HTTP/1.1\r\nBad Name: x\r\n{AUTH}\r\n",
    "colon first": f"GET {QUERY} HTTP/1.1\r\n: no name\r\n{AUTH}\r\n",
    "stray CR": f"GET {QUERY} HTTP/1.1\r\nAuthorization: Bearer {TEST_KEY}\rjunk\r\nAccept: */*\r\n\r\n",
    "latin-1 value": f"GET {QUERY} HTTP/1.1\r\nX-Note: caf\xe9\r\n{AUTH}\r\n",
    "odd name characters": f"GET {QUERY} HTTP/1.1\r\nX-!#$%&'*+.^_`|~: v\r\n{AUTH}\r\n",
    "end of input in headers": f"GET {QUERY} HTTP/1.1\r\n{AUTH}",
    "end of input mid line": f"GET {QUERY} HTTP/1.1\r\nAuthorization: Bearer {TEST_KEY}",
    "too many headers": f"GET {QUERY} HTTP/1.1\r\n" + "X-A: b\r\n" * 101 + "\r\n",
    "header line too long": f"GET {QUERY} HTTP/1.1\r\nX-Long: {'x' * 70_000}\r\n\r\n",
    "HTTP/1.0": f"GET {QUERY} HTTP/1.0\r\n{AUTH}\r\n",
    "HTTP/1.0 keep-alive": f"GET {QUERY} HTTP/1.0\r\nConnection: keep-alive\r\n{AUTH}\r\nGET {QUERY} HTTP/1.0\r\n\r\n",
    "HTTP/0.9": f"GET {QUERY}\r\n",
    "HTTP/0.9 POST": f"POST {QUERY}\r\n",
    "HTTP/2.0": f"GET {QUERY} HTTP/2.0\r\n{AUTH}\r\n",
    "bad version": f"GET {QUERY} HTTP/1.x\r\n{AUTH}\r\n",
    "lower-case version": f"GET {QUERY} http/1.1\r\n{AUTH}\r\n",
    "one word": "GET\r\n\r\n",
    "four words": f"GET {QUERY} extra HTTP/1.1\r\n\r\n",
    "empty line": "\r\n",
    "double slash": f"GET /{QUERY} HTTP/1.1\r\n{AUTH}\r\n",
    "unknown method": f"BREW {QUERY} HTTP/1.1\r\n{AUTH}\r\n",
    "HEAD": "HEAD /_sim/download/1/output.mp4 HTTP/1.1\r\n\r\n",
    "Connection close": f"GET {QUERY} HTTP/1.1\r\nConnection: close\r\n{AUTH}\r\nGET {QUERY} HTTP/1.1\r\n\r\n",
    "Connection CLOSE": f"GET {QUERY} HTTP/1.1\r\nConnection: CLOSE\r\n{AUTH}\r\nGET {QUERY} HTTP/1.1\r\n\r\n",
    "pipelined": f"GET {QUERY} HTTP/1.1\r\n{AUTH}\r\nGET {QUERY} HTTP/1.1\r\n\r\nGET {QUERY} HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n",
    "Expect 100-continue": f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n[]",
    "Expect on HTTP/1.0": f"POST {facts.PATH_CREATE} HTTP/1.0\r\n{AUTH}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n[]",
    "body, no Content-Length": f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}\r\n",
    "Content-Length not a number": f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Content-Length: ten\r\n\r\n",
    "Content-Length negative": f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Content-Length: -3\r\n\r\n",
    "Content-Length twice": f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Content-Length: 2\r\nContent-Length: 9\r\n\r\n[]",
    "Content-Length too large": f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Content-Length: 999999999999\r\n\r\n",
    "chunked body": f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n",
    "control endpoint": "POST /_sim/advance HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]",
}


@pytest.mark.parametrize("name", list(RAW_REQUESTS))
def test_answers_are_the_standard_librarys(sim, twin, name):
    raw = RAW_REQUESTS[name].encode("latin-1")
    assert comparable(exchange(sim, raw)) == comparable(exchange(twin, raw))


def test_the_twin_really_parses_otherwise(sim, twin):
    """The comparison above means something: the right key is read, a wrong one refused, and
    folding is read the email package's way by both."""
    answers = {name: comparable(exchange(sim, RAW_REQUESTS[name].encode("latin-1"))) for name in RAW_REQUESTS}
    assert b'"status_code": 2013' in answers["plain"]
    assert b'"status_code": 2049' in answers["duplicate, wrong first"]
    assert b'"status_code": 1004' in answers["no headers"]
    assert b'"status_code": 1004' in answers["line without colon"]  # the rest was a body
    assert b'"status_code": 1004' in answers["folded value"]  # "Bearer\r\n key" is no bearer key
    assert answers["pipelined"].count(b"HTTP/1.1 200 OK") == 3
    assert answers["Connection close"].count(b"HTTP/1.1 200 OK") == 1
    assert answers["Expect 100-continue"].startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    assert answers["too many headers"].startswith(b"HTTP/1.1 431 ")
    assert b"Error code: 505" in answers["HTTP/2.0"]  # as HTTP/0.9 would get it: no status line


HEADER_BLOCKS = [
    b"\r\n",
    b"",
    b"Host: a\r\nAccept: */*\r\n\r\n",
    b"Host: a\r\nhost: b\r\nHOST: c\r\n\r\n",
    b"A:\r\nB:  \r\nC: \t x \t\r\n\r\n",
    b"A: 1\nB: 2\n\n",
    b"A: 1\r\n continued\r\n\tand more\r\nB: 2\r\n\r\n",
    b" first\r\nA: 1\r\n\r\n",
    b"From x\r\nA: 1\r\n\r\n",
    b"A: 1\r\nFrom x\r\nB: 2\r\n\r\n",
    b"A: 1\r\nno colon\r\nB: 2\r\n\r\n",
    b"A B: 1\r\nC: 2\r\n\r\n",
    b": 1\r\nC: 2\r\n\r\n",
    b"A: 1\rB: 2\r\n\r\n",
    b"A: caf\xe9 \xff\r\n\r\n",
    b"X-!#$%&'*+.^_`|~: v\r\nY:z:w\r\n\r\n",
    b"A: 1\r\nB: 2",
    b"A: 1\r\n",
    b"Content-Type: multipart/form-data; boundary=x\r\n\r\n",
    b"Content-Type: message/delivery-status\r\nA: 1\r\n\r\n",
]


@pytest.mark.parametrize("block", HEADER_BLOCKS)
def test_header_parse_is_http_clients(block):
    expected = http.client.parse_headers(io.BytesIO(block))
    lines = sim_server._read_header_lines(io.BytesIO(block))
    message, fields = sim_server._parse_header_lines(lines, http.client.HTTPMessage)
    assert isinstance(message, http.client.HTTPMessage)
    assert message.items() == expected.items()
    names = {name.lower() for name in expected.keys()} | {"host", "authorization", "content-length"}
    assert {name: fields.get(name) for name in names} == {name: expected.get(name) for name in names}


def test_header_limits_are_http_clients():
    with pytest.raises(http.client.LineTooLong):
        sim_server._read_header_lines(io.BytesIO(b"A: " + b"x" * 70_000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException, match="got more than 100 headers"):
        sim_server._read_header_lines(io.BytesIO(b"A: 1\r\n" * 101 + b"\r\n"))
    assert len(sim_server._read_header_lines(io.BytesIO(b"A: 1\r\n" * 99 + b"\r\n"))) == 100


def test_100_continue_is_sent_before_the_body(sim):
    """A client that waits for ``100 Continue`` before sending its body gets it (the answer
    buffer is flushed for it), then the answer to the body."""
    with socket.create_connection((sim.host, sim.port), timeout=10) as conn:
        body = b'{"model": "MiniMax-Hailuo-02"}'
        conn.sendall(
            f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Expect: 100-continue\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        assert conn.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(body)
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"status_code": 2013' in answer  # a prompt is missing: the body was read


def test_keep_alive_across_many_requests(sim):
    """Hundreds of calls of every kind on one connection: each is answered in full, on the same
    connection, served by one thread."""
    conn = http.client.HTTPConnection(sim.host, sim.port, timeout=10)
    auth = {"Authorization": f"Bearer {TEST_KEY}"}
    file_url = None
    for i in range(150):
        conn.request("POST", facts.PATH_CREATE, body=f'{{"model": "MiniMax-Hailuo-02", "prompt": "shot {i}"}}', headers=auth)
        created = conn.getresponse()
        task_id = json.loads(created.read())["task_id"]
        conn.request("GET", f"{facts.PATH_QUERY}?task_id={task_id}", headers=auth)
        done = json.loads(conn.getresponse().read())
        assert done["status"] == "Success", done
        conn.request("GET", f"{facts.PATH_RETRIEVE}?file_id={done['file_id']}", headers=auth)
        file = json.loads(conn.getresponse().read())["file"]
        file_url = file["download_url"].removeprefix(sim.base_url)
        conn.request("HEAD", file_url)
        head = conn.getresponse()
        assert head.read() == b"" and int(head.getheader("Content-Length")) == file["bytes"]
        conn.request("GET", file_url)
        video = conn.getresponse()
        assert video.status == 200 and len(video.read()) == file["bytes"]
    assert len(sim.handler_threads()) == 1
    conn.close()
    assert sim.sim.stats()["calls"]["download"] == 300  # HEAD and GET


def test_date_header_names_the_second(sim):
    before = time.time()
    dates = [requests.get(sim.base_url + "/_sim/stats", timeout=10).headers["Date"] for _ in range(3)]
    after = time.time()
    allowed = {email.utils.formatdate(t, usegmt=True) for t in range(int(before), int(after) + 2)}
    assert set(dates) <= allowed
    assert sim_server._Handler._date[1] in allowed


def test_https_keep_alive_and_100_continue():
    """Over TLS too (the buffered answers are written through the TLS socket): many answers on
    one connection, and ``100 Continue`` before the body."""
    with running_simulator(SimConfig(key=TEST_KEY), https=True) as server:
        trust = ssl.create_default_context(cafile=str(server.ca_file))
        conn = http.client.HTTPSConnection(server.host, server.port, timeout=10, context=trust)
        for _ in range(40):
            conn.request("GET", QUERY, headers={"Authorization": f"Bearer {TEST_KEY}"})
            answer = conn.getresponse()
            assert answer.status == 200 and b'"status_code": 2013' in answer.read()
            conn.request("HEAD", "/_sim/download/1/output.mp4")
            assert conn.getresponse().read() == b""
        assert len(server.handler_threads()) == 1
        conn.close()
        with socket.create_connection((server.host, server.port), timeout=10) as raw:
            with trust.wrap_socket(raw, server_hostname=server.host) as tls:
                tls.sendall(
                    f"POST {facts.PATH_CREATE} HTTP/1.1\r\n{AUTH}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n".encode()
                )
                assert tls.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
                tls.sendall(b"[]")
                assert tls.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
