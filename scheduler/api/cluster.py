"""The cluster at a glance: who leads, which nodes are alive, how full the due queue is."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from scheduler.api.endpoint import Endpoint
from scheduler.api.schemas import ClusterOut, LeaderOut, NodeOut, QueueOut
from scheduler.api.wire import respond, runtime
from shared.runtime import Runtime

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


async def get_cluster(request: web.Request) -> web.Response:
    rt = runtime(request)
    since = rt.clock.now_dt() - NODE_SILENCE
    nodes = await rt.store.nodes.find({"last_seen": {"$gte": since}}).sort("_id", 1).to_list()
    return respond(ClusterOut(
        leader=await _leader(rt),
        nodes=[NodeOut(node_id=n["_id"], roles=n.get("roles", []), last_seen=n["last_seen"],
                       version=n.get("version")) for n in nodes],
        queue=await _queue(rt),
    ))


ENDPOINTS = [
    Endpoint("GET", "/cluster", get_cluster, "Leader, live nodes and due-queue depth",
             ClusterOut),
]
