"""Cluster-wide pause of publishing: one MongoDB document is the record, mirrored to a Redis key
that executors read before each publish.

The mirror expires after a few seconds, so a Redis that lost it (FLUSHALL) or missed a write is
read again from MongoDB within that time; a pause or resume writes both at once, so it takes
effect for every job claimed after the call returns.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from shared.runtime import Runtime
from shared.store import Doc

_ID = "pause"
#: How long the Redis copy is trusted before MongoDB is read again.
MIRROR_SECONDS = 5
#: When a job parked by a pause looks again by itself: resuming queues the parked jobs at
#: once, and this bounds the wait of one parked in the instant of a resume.
RECHECK = timedelta(minutes=5)


def _key(rt: Runtime) -> str:
    return f"{rt.keys.prefix}:paused"


def _encode(paused: Doc | None) -> str:
    if paused is None:
        return "null"
    return json.dumps({**paused, "since": paused["since"].isoformat()})


def _decode(raw: bytes | str) -> Doc | None:
    value: Any = json.loads(raw)
    if value is None:
        return None
    return {**value, "since": datetime.fromisoformat(value["since"])}


async def current(rt: Runtime) -> Doc | None:
    """`{"reason", "since", "by"}` while publishing is paused, else None."""
    raw = await rt.redis.get(_key(rt))
    if raw is not None:
        return _decode(raw)
    doc = await rt.store.cluster.find_one({"_id": _ID})
    paused = None if doc is None else doc.get("paused")
    # NX: a pause or resume written meanwhile is newer than what was just read.
    await rt.redis.set(_key(rt), _encode(paused), ex=MIRROR_SECONDS, nx=True)
    return paused


async def pause(rt: Runtime, reason: str, by: str) -> Doc:
    """Pause all publishing (the record first, then the mirror). Pausing again changes the
    reason and keeps the time it started."""
    now = rt.clock.now_dt()
    doc = await rt.store.cluster.find_one({"_id": _ID})
    previous = None if doc is None else doc.get("paused")
    paused: Doc = {"reason": reason, "since": previous["since"] if previous else now, "by": by}
    await rt.store.cluster.update_one({"_id": _ID}, {"$set": {"paused": paused}}, upsert=True)
    await rt.redis.set(_key(rt), _encode(paused), ex=MIRROR_SECONDS)
    return paused


async def resume(rt: Runtime) -> None:
    await rt.store.cluster.update_one({"_id": _ID}, {"$set": {"paused": None}}, upsert=True)
    await rt.redis.set(_key(rt), _encode(None), ex=MIRROR_SECONDS)
