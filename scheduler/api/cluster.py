"""The cluster at a glance (who leads, which nodes are alive, how full the due queue is,
whether publishing is paused), and the pause of all publishing."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, Field

from scheduler.api import effects
from scheduler.api.auth import ROLE
from scheduler.api.endpoint import Endpoint
from scheduler.api.schemas import ClusterOut, LeaderOut, NodeOut, PausedOut, QueueOut
from scheduler.api.wire import read_body, respond, runtime
from shared import pause
from shared.models import Strict
from shared.runtime import Runtime
from shared.store import Doc

#: A node that has not sent a heartbeat for this long is not listed (heartbeats come every 5 s).
NODE_SILENCE = timedelta(seconds=60)


async def _leader(rt: Runtime) -> LeaderOut | None:
    """The holder of the Redis leader key (`<node_id>:<token>`), with the epoch and start time
    MongoDB recorded when that node won."""
    raw = await rt.redis.get(rt.keys.leader)
    if raw is None:
        return None
    value = raw.decode() if isinstance(raw, bytes) else str(raw)
    node_id = value.rpartition(":")[0] or value
    doc = await rt.store.cluster.find_one({"_id": "leader"})
    if doc is None or doc.get("node_id") != node_id:
        return LeaderOut(node_id=node_id, epoch=None, since=None)
    return LeaderOut(node_id=node_id, epoch=doc.get("epoch"), since=doc.get("since"))


async def _queue(rt: Runtime) -> QueueOut:
    lanes = await rt.queue.depth()
    now_ms = rt.clock.now_ms()
    overdue, oldest_ms = await rt.queue.overdue(now_ms)
    return QueueOut(
        staged=sum(lanes.values()), overdue=overdue, lanes=lanes,
        oldest_overdue_seconds=0.0 if oldest_ms is None else (now_ms - oldest_ms) / 1000,
    )


class PauseRequest(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class PauseOut(BaseModel):
    paused: PausedOut | None
    #: On resume: how many parked jobs were queued again.
    resumed: int | None = None


def paused_out(doc: Doc | None) -> PausedOut | None:
    return None if doc is None else PausedOut(**doc)


async def status(rt: Runtime) -> ClusterOut:
    since = rt.clock.now_dt() - NODE_SILENCE
    nodes = await rt.store.nodes.find({"last_seen": {"$gte": since}}).sort("_id", 1).to_list()
    return ClusterOut(
        leader=await _leader(rt),
        nodes=[NodeOut(node_id=n["_id"], roles=n.get("roles", []), last_seen=n["last_seen"],
                       version=n.get("version")) for n in nodes],
        queue=await _queue(rt),
        paused=paused_out(await pause.current(rt)),
    )


async def get_cluster(request: web.Request) -> web.Response:
    return respond(await status(runtime(request)))


async def pause_publishing(rt: Runtime, reason: str, by: str) -> PauseOut:
    """Stop all publishing now: every job an executor takes from here on waits, parked, and
    nothing is lost; jobs already in a platform call finish."""
    return PauseOut(paused=paused_out(await pause.pause(rt, reason, by)))


async def resume_publishing(rt: Runtime) -> PauseOut:
    """Publish again, and queue at once the jobs parked meanwhile."""
    await pause.resume(rt)
    return PauseOut(paused=None, resumed=await effects.resume_publishing(rt))


async def pause_cluster(request: web.Request) -> web.Response:
    body = await read_body(request, PauseRequest)
    rt = runtime(request)
    return respond(await pause_publishing(rt, body.reason, f"api:{request.get(ROLE, 'admin')}"))


async def resume_cluster(request: web.Request) -> web.Response:
    return respond(await resume_publishing(runtime(request)))


ENDPOINTS = [
    Endpoint("GET", "/cluster", get_cluster, "Leader, live nodes, due-queue depth and whether "
             "publishing is paused", ClusterOut),
    Endpoint("POST", "/cluster/pause", pause_cluster, "Pause all publishing, with a reason",
             PauseOut, body=PauseRequest, errors=(400, 422)),
    Endpoint("POST", "/cluster/resume", resume_cluster,
             "Resume publishing and queue the jobs parked meanwhile", PauseOut),
]
