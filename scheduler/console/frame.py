"""What every console page and action shares: the security headers, the sign-in guard with its
CSRF and read-only checks, error pages, and rendering with the common context."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from scheduler.api.auth import may
from scheduler.api.errors import UNAVAILABLE, ApiError
from scheduler.api.wire import runtime
from scheduler.console import session
from scheduler.console.session import Session
from shared import pause
from shared.logging import get_logger
from shared.models import WAITING_STATES, ContentState

log = get_logger(__name__)

BASE = "/console"
SESSION = web.RequestKey("console_session", Session)
#: No inline script or style anywhere: everything the pages run or wear comes from /static.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: The navigation counts jobs awaiting approval up to this many ("99+").
BADGE_MAX = 100
#: The jobs the approval queue lists: generated content held for an operator, still in time.
AWAITING_APPROVAL = {"content_state": str(ContentState.AWAITING_APPROVAL),
                     "state": {"$in": [str(s) for s in WAITING_STATES]}}
#: Routes open without a session (by route name).
OPEN_ROUTES = frozenset({"login", "login_form"})


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    if not response.prepared:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
    return response


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A refused request shows why, in a page, and changed nothing."""
    try:
        return await handler(request)
    except ApiError as exc:
        return await render(request, "error.html", {"status": exc.status, "message": exc.message,
                                                    "details": exc.details}, status=exc.status)
    except UNAVAILABLE as exc:
        log.warning("console_backend_unavailable", path=request.path, error=type(exc).__name__)
        return await render(request, "error.html", {
            "status": 503, "message": "MongoDB or Redis is unreachable; try again shortly",
            "details": []}, status=503)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("console_internal_error", method=request.method, path=request.path)
        return web.Response(status=500, text="internal error; see the server log")


@web.middleware
async def signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but sign-in and the static files needs a session. Every change needs the
    session's CSRF token, and an admin session: a viewer's change is refused here, by the
    server, whatever its page showed (sign-out aside)."""
    route = request.match_info.route
    if route.name in OPEN_ROUTES or request.path.startswith(f"{BASE}/static/"):
        return await handler(request)
    found = await session.find(runtime(request), request)
    if found is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"{BASE}/login?next={quote(request.path_qs, safe='')}")
        raise ApiError(401, "you are not signed in (or the session expired); sign in again")
    request[SESSION] = found
    if request.method != "GET":
        form = await request.post()
        sent = form.get("csrf")
        if not found.csrf_ok(sent if isinstance(sent, str) else None):
            raise ApiError(403, "the form's CSRF token is missing or wrong; nothing was "
                                "changed. Reload the page and try again")
        if route.name != "logout" and not may(found.role, request.method):
            raise ApiError(403, "this is a read-only (viewer) session; nothing was changed")
    return await handler(request)


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def safe_url(value: str | None) -> str | None:
    """Only http(s) links are rendered as links (a platform's answer could name any scheme)."""
    return value if value and value.startswith(("https://", "http://")) else None


async def render(request: web.Request, template: str, context: Mapping[str, Any],
                 status: int = 200) -> web.Response:
    """A page with what the layout needs: the session, its CSRF token, the pause banner, the
    count of jobs awaiting approval."""
    rt = runtime(request)
    found = request.get(SESSION)
    paused = None
    awaiting = 0
    if found is not None:
        try:
            paused = await pause.current(rt)
        except UNAVAILABLE:
            paused = None
        try:
            awaiting = await rt.store.jobs.count_documents(AWAITING_APPROVAL, limit=BADGE_MAX)
        except UNAVAILABLE:
            awaiting = 0
    now = rt.clock.now_dt()
    return aiohttp_jinja2.render_template(template, request, {
        "session": found, "csrf": found.csrf if found else "", "paused": paused, "now": now,
        "awaiting_count": f"{BADGE_MAX - 1}+" if awaiting >= BADGE_MAX else awaiting,
        "path": request.path_qs, "base": BASE, "done": request.query.get("done"),
        "referer": safe_url(request.headers.get("Referer")), **context,
    }, status=status)


def jinja_filters() -> dict[str, Any]:
    return {"t": fmt_time, "age": fmt_age, "safe_url": safe_url}
