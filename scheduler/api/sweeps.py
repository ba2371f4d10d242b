"""Recovery sweeps on demand: `POST /sweeps` records a request that a recovery node picks up
within a second or two; `GET /sweeps` lists the reports, newest first."""

from __future__ import annotations

from aiohttp import web

from scheduler.api.endpoint import Endpoint
from scheduler.api.schemas import SweepAccepted, SweepOut, SweepPage, SweepQuery, SweepRequest
from scheduler.api.wire import read_body, read_query, respond, runtime
from shared.models import new_id
from shared.store import Doc


def sweep_out(doc: Doc) -> SweepOut:
    return SweepOut(id=doc["_id"], **{k: v for k, v in doc.items() if k in SweepOut.model_fields})


async def request_sweep(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, SweepRequest)
    report: Doc = {"_id": new_id(), "kind": body.kind, "status": "requested",
              "requested_at": rt.clock.now_dt()}
    await rt.store.sweeps.insert_one(report)
    return respond(SweepAccepted(id=report["_id"]), status=202)


async def list_sweeps(request: web.Request) -> web.Response:
    rt = runtime(request)
    query = read_query(request, SweepQuery)
    where: Doc = {} if query.after is None else {"_id": {"$lt": query.after}}
    docs = await rt.store.sweeps.find(where).sort("_id", -1).limit(query.limit + 1).to_list()
    more = len(docs) > query.limit
    docs = docs[: query.limit]
    return respond(SweepPage(items=[sweep_out(d) for d in docs],
                             next=docs[-1]["_id"] if more else None))


ENDPOINTS = [
    Endpoint("POST", "/sweeps", request_sweep, "Request a light or full recovery sweep",
             SweepAccepted, status=202, body=SweepRequest, errors=(400, 422)),
    Endpoint("GET", "/sweeps", list_sweeps, "Recent sweep reports, newest first", SweepPage,
             query=SweepQuery, errors=(422,)),
]
