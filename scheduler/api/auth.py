"""Bearer-token authentication of the admin API (API.md: every route but openapi.json)."""

from __future__ import annotations

import hmac
from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from scheduler.api.errors import error_response
from shared.http import RUNTIME


def bearer_auth(public: Collection[Handler]) -> Middleware:
    """Reject requests without the admin token, except to the `public` handlers.

    Unknown paths are rejected too, so an anonymous client learns nothing about the routes.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.handler in public:
            return await handler(request)
        expected = request.config_dict[RUNTIME].settings.admin_token
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            return error_response(401, "unauthorized", "a valid bearer token is required",
                                  headers={"WWW-Authenticate": 'Bearer realm="herald"'})
        return await handler(request)

    return middleware
