"""Bearer-token authentication of the admin API (API.md: every route but openapi.json).

Two tokens: the admin token may do everything; the viewer token (HERALD_VIEWER_TOKEN) may only
read, and the server refuses its changes with a 403 whatever a client shows.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from scheduler.api.errors import error_response
from shared.config import Settings
from shared.http import RUNTIME

Role = Literal["admin", "viewer"]
#: Where authentication leaves the role of the token a request carried.
ROLE = web.RequestKey("herald_role", str)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def role_of(settings: Settings, token: str) -> Role | None:
    """The role `token` grants, or None. compare_digest: the time taken does not reveal how
    much of a token matched."""
    given = token.strip().encode()
    if hmac.compare_digest(given, settings.admin_token.encode()):
        return "admin"
    viewer = settings.viewer_token
    if viewer is not None and hmac.compare_digest(given, viewer.encode()):
        return "viewer"
    return None


def may(role: Role, method: str) -> bool:
    return role == "admin" or method in READ_METHODS


def bearer_auth(public: Collection[Handler]) -> Middleware:
    """Reject requests without a valid token, except to the `public` handlers, and changes
    asked for with the viewer token.

    Unknown paths are rejected too, so an anonymous client learns nothing about the routes.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.handler in public:
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        role = role_of(request.config_dict[RUNTIME].settings, token) \
            if scheme.lower() == "bearer" else None
        if role is None:
            return error_response(401, "unauthorized", "a valid bearer token is required",
                                  headers={"WWW-Authenticate": 'Bearer realm="herald"'})
        if not may(role, request.method):
            return error_response(403, "forbidden",
                                  "the viewer token is read-only; changes need the admin token")
        request[ROLE] = role
        return await handler(request)

    return middleware
