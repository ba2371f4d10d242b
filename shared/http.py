"""The HTTP app every node serves: /healthz, /readyz, /metrics, plus what its roles add; the
app it serves while it waits for its databases; and the server they are served on, which
times connections out and answers malformed HTTP in the API's error format."""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
from aiohttp.web_request import BaseRequest
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.logging import get_logger
from shared.metrics import REGISTRY
from shared.runtime import Runtime, Startup

log = get_logger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
STARTUP = web.AppKey("startup", Startup)


def error_body(status: int, code: str, message: str) -> web.Response:
    """The API's error format, for answers given outside the API's own error middleware."""
    return web.json_response(
        {"error": {"code": code, "message": message, "details": []}}, status=status)


async def healthz(_request: web.Request) -> web.Response:
    """Answered by the event loop itself: no I/O, so it only fails when the loop is stuck."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[RUNTIME].readiness()
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", **checks},
                             status=200 if ok else 503)


async def metrics(_request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def starting_readyz(request: web.Request) -> web.Response:
    """Not ready, naming the services not up yet."""
    return web.json_response({"status": "starting", **request.app[STARTUP].services},
                             status=503)


async def starting(request: web.Request) -> web.Response:
    """Any other path, the API's included: its routes exist only once the node is up."""
    waiting = sorted(k for k, v in request.app[STARTUP].services.items() if v != "ok")
    return error_body(503, "unavailable",
                      f"the node is starting; waiting for {', '.join(waiting) or 'its roles'}")


def make_starting_app(startup: Startup) -> web.Application:
    """What a node serves until its databases answer: alive, so liveness does not restart a
    node waiting out an outage; not ready; everything else 503."""
    app = web.Application()
    app[STARTUP] = startup
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", starting_readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{path:.*}", starting)
    return app


def make_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


class Connection(web.RequestHandler):
    """aiohttp's connection, with what it lacks for a server facing untrusted clients.

    A header-read deadline: aiohttp closes a connection that waits too long for a request
    (`keepalive_timeout`), but nothing bounds a client sending a request head slowly for less
    than that. The deadline runs from the connection's start, or from the first byte of a later
    request, until the head is parsed. (Bytes pipelined behind a request still being handled
    are bounded by the keep-alive timer alone.)

    Malformed HTTP (and a crash outside the API's error middleware) answered in the API's error
    format without echoing the input, and a client's malformed request logged without a
    traceback: aiohttp answers text/plain quoting the bad bytes and logs a traceback at error
    level.
    """

    __slots__ = ("_header_deadline", "_header_timeout")

    def __init__(
        self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, header_timeout: float,
        **options: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **options)
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Waiting for a request head: no request is being handled, so these bytes start one.
        idle = self._waiter is not None
        super().data_received(data)
        if self._messages:
            self._disarm()
        elif idle and data and self._header_deadline is None:
            self._arm()

    def _arm(self) -> None:
        self._header_deadline = self._loop.call_later(self._header_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _timed_out(self) -> None:
        self._header_deadline = None
        log.debug("http_header_timeout", peer=self.peername)
        self.force_close()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp does: the response has begun, so the connection can only be dropped.
            raise ConnectionError("the response has started; no error response can follow")
        if status >= 500:
            log.error("http_internal_error", method=request.method, path=request.path,
                      status=status, exc_info=exc)
            code, text = "internal_error", "internal error; see the server log"
        else:
            # Non-HTTP bytes first on a connection are mostly scanners and TLS to a plain port.
            noise = isinstance(exc, BadHttpMethod) and self._request_count == 1
            (log.debug if noise else log.info)(
                "http_malformed_request", peer=request.remote, status=status,
                error=type(exc).__name__)
            code = HTTPStatus(status).phrase.lower().replace(" ", "_")
            text = ("a request line or header is longer than this server accepts"
                    if isinstance(exc, LineTooLong) else "the request is not valid HTTP/1.1")
        response = error_body(status, code, text)
        response.force_close()
        return response


class HttpServer:
    """A node's listener. aiohttp's sites take no connection class, so the app runner keeps
    the app's life cycle (startup, shutdown, cleanup) and the draining of open connections,
    and this listener makes each connection a `Connection` registered with the runner.

    The app can be replaced while listening (`serve`): an aiohttp app's routes are fixed once
    it is served, and a node's roles, which add routes, exist only once its databases answer.
    """

    def __init__(
        self, app: web.Application, *, keepalive_timeout: float, header_timeout: float
    ) -> None:
        self._runner = web.AppRunner(app, handle_signals=False)
        self._header_timeout = header_timeout
        self._options: dict[str, Any] = {
            "keepalive_timeout": keepalive_timeout, "access_log": None,
        }
        self._listener: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; the port bound (port 0 picks a free one)."""
        await self._runner.setup()
        loop = asyncio.get_running_loop()

        def connection() -> Connection:
            server = self._runner.server
            assert server is not None  # set by setup()
            return Connection(server, loop=loop, header_timeout=self._header_timeout,
                              **self._options)

        self._listener = await loop.create_server(connection, host, port, reuse_address=True)
        bound: int = self._listener.sockets[0].getsockname()[1]
        return bound

    async def serve(self, app: web.Application) -> None:
        """Serve `app` from now on: new connections get it, while the app served so far
        finishes its requests and closes its connections."""
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        previous, self._runner = self._runner, runner
        await previous.cleanup()

    async def stop(self) -> None:
        """Stop accepting, then let the runner shut the app down and drain the connections."""
        if self._listener is not None:
            self._listener.close()
        await self._runner.cleanup()
