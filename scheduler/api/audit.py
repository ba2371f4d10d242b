"""The audit log: every change made through the API or the console, newest first.

Changes are recorded where they are dispatched, once for all handlers: the API's `audit_changes`
middleware records each successful change, and the console records each action it
performs. Credentials and secret-looking values never reach the log.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Annotated, Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, Field
from pymongo.errors import PyMongoError

from scheduler.api.auth import READ_METHODS, ROLE
from scheduler.api.endpoint import Endpoint
from scheduler.api.schemas import ID_PATTERN, MAX_PAGE, UtcTime
from scheduler.api.wire import read_query, respond, runtime
from shared.logging import get_logger, redact
from shared.models import Strict, new_id
from shared.runtime import Runtime
from shared.store import Doc

log = get_logger(__name__)

#: Keys left out of recorded details whatever their name: they hold credentials.
_SECRET_FIELDS = frozenset({"credentials", "credentials_enc", "code", "state", "csrf"})
#: A recorded text longer than this is cut: the log says what changed, the record holds it.
_MAX_TEXT = 2000
#: Details larger than this (a batch of a thousand posts) are recorded by their size only; a
#: JSON body larger than this is not read at all.
_MAX_DETAILS = 64_000


class AuditOut(BaseModel):
    id: str
    at: UtcTime
    #: Who: `api:admin` (the admin token), `console:admin` (a console session),
    #: `api:oauth-callback` (a platform sending the browser back with an account).
    actor: str
    #: What: the operation, `POST /jobs/{id}/retry` (the route, as the API names it).
    action: str
    #: The id of the resource changed, when there is one.
    target: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    next: str | None


class AuditQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    #: Entries are listed newest first; `after` continues with those older than this id.
    after: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    target: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    actor: Annotated[str, Field(min_length=1, max_length=64)] | None = None


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in _SECRET_FIELDS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[:_MAX_TEXT] + "…"
    return value


async def record(rt: Runtime, actor: str, action: str, target: str | None,
                 details: dict[str, Any]) -> None:
    """Append one entry. The change it describes is made already, so a failure to record is
    logged rather than turned into a failed request."""
    cleaned = redact(_clean(details))
    size = len(json.dumps(cleaned, default=str))
    if size > _MAX_DETAILS and not cleaned.get("truncated"):
        cleaned = {"truncated": True, "bytes": size, "query": cleaned.get("query")}
    entry: Doc = {"_id": new_id(), "at": rt.clock.now_dt(), "actor": actor, "action": action,
                  "target": target, "details": cleaned}
    try:
        await rt.store.audit.insert_one(entry)
    except PyMongoError as exc:
        log.error("audit_not_recorded", action=action, target=target, error=type(exc).__name__)


def audit_out(doc: Doc) -> AuditOut:
    return AuditOut(id=doc["_id"], at=doc["at"], actor=doc["actor"], action=doc["action"],
                    target=doc.get("target"), details=doc.get("details") or {})


async def find(rt: Runtime, query: AuditQuery) -> tuple[list[Doc], str | None]:
    """One page of entries, newest first, and the cursor of the next."""
    where: Doc = {}
    if query.after is not None:
        where["_id"] = {"$lt": query.after}
    if query.target is not None:
        where["target"] = query.target
    if query.actor is not None:
        where["actor"] = query.actor
    docs = await rt.store.audit.find(where).sort("_id", -1).limit(
        query.limit + 1).to_list()
    more = len(docs) > query.limit
    docs = docs[: query.limit]
    return docs, docs[-1]["_id"] if more else None


async def list_audit(request: web.Request) -> web.Response:
    docs, cursor = await find(runtime(request), read_query(request, AuditQuery))
    return respond(AuditPage(items=[audit_out(d) for d in docs], next=cursor))


async def _request_details(request: web.Request) -> dict[str, Any]:
    """The query and a JSON body (which aiohttp kept when the handler read it); of any other
    body, an upload above all, only its type and length."""
    details: dict[str, Any] = {}
    if request.query:
        details["query"] = dict(request.query)
    if request.content_type == "application/json":
        raw = await request.read()
        if len(raw) > _MAX_DETAILS:
            # A batch of a thousand posts: recorded by its size, without reading it again.
            details["truncated"] = True
            details["bytes"] = len(raw)
            return details
        try:
            details["body"] = json.loads(raw) if raw.strip() else None
        except ValueError:
            details["body_bytes"] = len(raw)
    elif request.body_exists:
        details["body_type"] = request.content_type
        details["body_bytes"] = request.content_length
    return details


def _target(request: web.Request, response: web.StreamResponse) -> str | None:
    """The id in the path, else the id of what the request created; a batch's multi-status
    answer names many (each its own result), so it is not read (it can be megabytes)."""
    if "id" in request.match_info:
        return request.match_info["id"]
    if response.status == 207:
        return None
    if isinstance(response, web.Response) and response.body is not None and \
            response.content_type == "application/json":
        try:
            made = json.loads(bytes(response.body))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if isinstance(made, dict) and isinstance(made.get("account"), dict):
            made = made["account"]  # the OAuth callback's answer
        if isinstance(made, dict) and isinstance(made.get("id"), str):
            return str(made["id"])
    return None


def audit_changes(changing: Collection[Handler], reading: Collection[Handler]) -> Middleware:
    """Record every change the API made: a request answered with a success whose method
    changes things, unless its handler is among `reading` (a POST that only computes), or
    whose handler is among `changing` (a GET that stores something)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        routed = request.match_info.handler
        if not 200 <= response.status < 300 or routed in reading or (
                request.method in READ_METHODS and routed not in changing):
            return response
        route = request.match_info.route.resource
        prefix = request.app.get(PREFIX, "")
        path = route.canonical.removeprefix(prefix) if route else request.path
        actor = f"api:{request.get(ROLE, 'oauth-callback')}"
        await record(runtime(request), actor, f"{request.method} {path}",
                     _target(request, response), await _request_details(request))
        return response

    return middleware


#: The API's mount point, stored on its app so routes are named as the API document names them.
PREFIX = web.AppKey("audit_prefix", str)

ENDPOINTS = [
    Endpoint("GET", "/audit", list_audit, "Every change made through the API or the console, "
             "newest first", AuditPage, query=AuditQuery, errors=(422,)),
]
