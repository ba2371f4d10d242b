"""The admin API v1 (API.md), mounted under /api/v1 of a scheduler node's HTTP app."""

from __future__ import annotations

from aiohttp import web

from scheduler.api import (
    accounts,
    audit,
    cluster,
    events,
    jobs,
    media,
    oauth,
    openapi,
    posts,
    sweeps,
)
from scheduler.api.auth import bearer_auth
from scheduler.api.errors import error_middleware
from scheduler.public import add_public_routes

PREFIX = "/api/v1"
ENDPOINTS = [
    *accounts.ENDPOINTS, *oauth.ENDPOINTS, *posts.ENDPOINTS, *jobs.ENDPOINTS, *cluster.ENDPOINTS,
    *sweeps.ENDPOINTS, *events.ENDPOINTS, *audit.ENDPOINTS, *media.ENDPOINTS,
    *openapi.ENDPOINTS,
]


def add_api_routes(app: web.Application) -> None:
    """Mount the API as a sub-application, so its error format and authentication apply to
    /api/v1 only; its handlers find the runtime at `app[RUNTIME]` through `config_dict`."""
    api = web.Application(middlewares=[
        error_middleware, bearer_auth({e.handler for e in ENDPOINTS if e.public}),
        audit.audit_changes({e.handler for e in ENDPOINTS if e.changes},
                            {e.handler for e in ENDPOINTS if e.changes is False}),
    ])
    api[audit.PREFIX] = PREFIX
    for endpoint in ENDPOINTS:
        api.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
    api[openapi.OPENAPI] = openapi.openapi_document(ENDPOINTS, PREFIX)
    events.install(api)
    app.add_subapp(PREFIX, api)
    add_public_routes(app)
