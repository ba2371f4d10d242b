"""The node's HTTP server toward misbehaving clients, over raw sockets: connections that send
nothing, half a request or a request head too slowly are closed (HERALD_HTTP_KEEPALIVE_SECONDS,
HERALD_HTTP_HEADER_TIMEOUT_SECONDS); malformed HTTP is a 400 in the API's error format that
does not echo the input, logged without a traceback."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import structlog

import shared.http
from scheduler.api import add_api_routes
from shared.http import HttpServer, make_app
from shared.logging import configure_logging, get_logger
from shared.runtime import Runtime
from tests.integration.api_support import assert_error_shape

#: Generous: the bounds under test are a second; this only says "closed, not held".
DEADLINE = 15.0
#: A timeout these tests must never wait for, so what closes a connection is the other one.
NEVER = 600.0

Listening = Callable[..., AbstractAsyncContextManager[int]]


@pytest.fixture
def listening(runtime: Runtime) -> Listening:
    """The node's app (health, metrics and the admin API) on the node's server, with the
    timeouts given; yields the port."""
    @asynccontextmanager
    async def start(*, keepalive: float, header: float) -> AsyncIterator[int]:
        app = make_app(runtime)
        add_api_routes(app)
        server = HttpServer(app, keepalive_timeout=keepalive, header_timeout=header)
        try:
            yield await server.start("127.0.0.1", 0)
        finally:
            await server.stop()

    return start


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closes the connection (having sent nothing more); the wait is
    bounded by DEADLINE."""
    try:
        async with asyncio.timeout(DEADLINE):
            return await reader.read() == b""
    except ConnectionResetError:
        return True


async def exchange(port: int, request: bytes) -> bytes:
    """Send `request` and read the answer until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(DEADLINE):
            return await reader.read()
    finally:
        writer.close()


async def one_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A whole request and its whole answer, leaving the connection kept alive."""
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n")
    async with asyncio.timeout(DEADLINE):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)


async def test_a_connection_that_sends_nothing_is_closed(listening: Listening) -> None:
    async with listening(keepalive=NEVER, header=1) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await closed_by_server(reader)
        finally:
            writer.close()


async def test_half_a_request_line_is_closed(listening: Listening) -> None:
    async with listening(keepalive=NEVER, header=1) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /heal")
            assert await closed_by_server(reader)
        finally:
            writer.close()


async def test_a_slow_head_after_a_request_is_closed(listening: Listening) -> None:
    """The header deadline starts again with a kept-alive connection's next request."""
    async with listening(keepalive=NEVER, header=1) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await one_request(reader, writer)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: her")
            assert await closed_by_server(reader)
        finally:
            writer.close()


async def test_an_idle_kept_alive_connection_is_closed(listening: Listening) -> None:
    async with listening(keepalive=1, header=NEVER) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await one_request(reader, writer)
            assert await closed_by_server(reader)
        finally:
            writer.close()


@pytest.fixture
def node_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The node's JSON log lines at info level. configure_logging is process-wide, so
    structlog and the root logger are put back afterwards; and a structlog logger keeps the
    configuration of its first use, so the server's is a fresh one for each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    configure_logging("info", node_id="node-a", stream=out)
    monkeypatch.setattr(shared.http, "log", get_logger(shared.http.__name__))
    yield out
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("request_bytes", "probe"),
    [
        (b"GET /api/v1/posts HTTP/1.1\r\nHost: herald\r\nX-Probe: zq\x00zq\r\n\r\n",
         b"zq"),
        (b"GET /api/v1/" + b"p" * 10_000 + b" HTTP/1.1\r\nHost: herald\r\n\r\n", b"ppp"),
    ],
    ids=["nul-in-header", "request-line-too-long"],
)
async def test_malformed_http_is_a_json_400_logged_without_traceback(
    listening: Listening, node_log: io.StringIO, request_bytes: bytes, probe: bytes
) -> None:
    async with listening(keepalive=NEVER, header=NEVER) as port:
        answer = await exchange(port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"400", answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert probe not in body
    reply = json.loads(body)
    assert_error_shape(reply)
    assert reply["error"]["code"] == "bad_request"

    lines = [json.loads(line) for line in node_log.getvalue().splitlines()]
    assert any(line["event"] == "http_malformed_request" for line in lines), lines
    assert not [line for line in lines if line["level"] == "error" or "exception" in line]
