"""The HTTP app every node serves: /healthz, /readyz, /metrics, plus what its roles add."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.metrics import REGISTRY
from shared.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)


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


def make_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
