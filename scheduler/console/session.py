"""Console sign-in sessions, kept in Redis under a hash of their cookie value.

A session holds the role of the token signed in with and the CSRF token every change must
carry. Losing Redis signs everyone out and loses nothing else (DESIGN §2).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from aiohttp import web

from scheduler.api.auth import Role
from shared.runtime import Runtime

COOKIE = "herald_session"
#: The double-submit token of the sign-in form, which comes before any session.
LOGIN_COOKIE = "herald_login"


@dataclass(frozen=True)
class Session:
    key: str
    role: Role
    csrf: str

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


def _redis_key(rt: Runtime, cookie: str) -> str:
    digest = hashlib.sha256(cookie.encode()).hexdigest()
    return f"{rt.keys.prefix}:console:session:{digest}"


def _ttl(rt: Runtime) -> int:
    return int(rt.settings.console_session_hours * 3600)


async def start(rt: Runtime, response: web.StreamResponse, role: Role) -> None:
    """A new session for `role`, its cookie set on `response`."""
    cookie = secrets.token_urlsafe(32)
    data = {"role": role, "csrf": secrets.token_urlsafe(32)}
    await rt.redis.set(_redis_key(rt, cookie), json.dumps(data), ex=_ttl(rt))
    response.set_cookie(COOKIE, cookie, path="/console", httponly=True, samesite="Strict",
                        secure=rt.settings.console_secure_cookie, max_age=_ttl(rt))


async def find(rt: Runtime, request: web.Request) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    key = _redis_key(rt, cookie)
    raw = await rt.redis.get(key)
    if raw is None:
        return None
    data = json.loads(raw)
    return Session(key=key, role=data["role"], csrf=data["csrf"])


async def end(rt: Runtime, session: Session, response: web.StreamResponse) -> None:
    await rt.redis.delete(session.key)
    response.del_cookie(COOKIE, path="/console")
