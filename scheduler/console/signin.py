"""Signing in with the admin or the viewer token, and out.

The sign-in form has no session to take a CSRF token from, so it carries a double-submit
token: a random value in a SameSite=Strict cookie and in the form, which another site can
neither read nor set.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from scheduler.api.auth import role_of
from scheduler.api.wire import runtime
from scheduler.console import session
from scheduler.console.frame import BASE, SESSION, render
from shared.logging import get_logger

log = get_logger(__name__)


def _next(raw: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    if raw and raw.startswith(f"{BASE}/") and not raw.startswith("//"):
        return raw
    return f"{BASE}/"


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def login_form(request: web.Request, *, error: str | None = None, status: int = 200,
                     next_path: str | None = None) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = await render(request, "login.html", {
        "login_token": token, "next": _next(next_path or request.query.get("next")),
        "error": error,
    }, status=status)
    response.set_cookie(session.LOGIN_COOKIE, token, path=f"{BASE}/login", httponly=True,
                        samesite="Strict", secure=runtime(request).settings.console_secure_cookie,
                        max_age=600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    rt = runtime(request)
    form = await request.post()
    target = form.get("next")
    next_path = _next(target if isinstance(target, str) else None)
    sent, kept = form.get("login_token"), request.cookies.get(session.LOGIN_COOKIE)
    if not (isinstance(sent, str) and kept and hmac.compare_digest(sent.encode(),
                                                                   kept.encode())):
        return await login_form(request, error="The sign-in form expired; try again.",
                                status=403, next_path=next_path)
    token = form.get("token")
    role = role_of(rt.settings, token) if isinstance(token, str) else None
    if role is None:
        log.info("console_sign_in_refused", peer=request.remote)
        return await login_form(request, error="That token is not valid.", status=401,
                                next_path=next_path)
    response = see_other(next_path)
    await session.start(rt, response, role)
    response.del_cookie(session.LOGIN_COOKIE, path=f"{BASE}/login")
    log.info("console_signed_in", role=role, peer=request.remote)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = see_other(f"{BASE}/login")
    await session.end(runtime(request), request[SESSION], response)
    return response
