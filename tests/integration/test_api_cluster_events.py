"""`GET /cluster` from the leader key, the node heartbeats and the due queue; and the live
event stream relaying job state changes."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from shared.runtime import Runtime
from tests.integration.api_support import now, parse_time, serve_api, z


async def test_cluster_of_nobody(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        cluster = await api.ok("GET", "/cluster")
        assert cluster["leader"] is None and cluster["nodes"] == []
        assert cluster["queue"]["staged"] == 0 and cluster["queue"]["overdue"] == 0
        assert cluster["queue"]["oldest_overdue_seconds"] == 0


async def test_cluster_reports_leader_nodes_and_queue(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        leader = "host-a:4242"  # node ids may contain colons; the token follows the last one
        since = now(runtime).replace(microsecond=0)
        await runtime.redis.set(runtime.keys.leader, f"{leader}:token123")
        await runtime.store.cluster.insert_one(
            {"_id": "leader", "epoch": 7, "node_id": leader, "since": since})
        await runtime.store.nodes.insert_many([
            {"_id": leader, "roles": ["scheduler"], "last_seen": now(runtime), "version": "0.1"},
            {"_id": "gone", "roles": ["executor"],
             "last_seen": now(runtime) - timedelta(minutes=5), "version": "0.1"},
        ])
        account = (await api.account())["id"]
        await api.post([account])
        await runtime.queue.stage("overdue-job", now(runtime) - timedelta(seconds=30), "high")

        cluster = await api.ok("GET", "/cluster")
        assert cluster["leader"] == {"node_id": leader, "epoch": 7,
                                     "since": z(since)}
        [node] = cluster["nodes"]
        assert node["node_id"] == leader and node["roles"] == ["scheduler"]
        assert node["version"] == "0.1"
        parse_time(node["last_seen"])
        queue = cluster["queue"]
        assert queue["staged"] == 2 and queue["overdue"] == 1
        assert 29 <= queue["oldest_overdue_seconds"] < 60


async def test_events_stream_job_state_changes(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = (await api.account())["id"]
        job_id = (await api.post([account]))["jobs"][0]["id"]
        headers = {"Authorization": f"Bearer {api.token}"}
        async with api.client.get("/api/v1/events", headers=headers) as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert await asyncio.wait_for(stream.content.readline(), 5) == b": subscribed\n"
            await asyncio.wait_for(stream.content.readline(), 5)

            await api.ok("POST", f"/jobs/{job_id}/cancel")
            # Events are batched for a few milliseconds, so the job's earlier `staged` event
            # may come first; read until the cancellation shows up.
            events = []
            while not events or events[-1]["state"] != "cancelled":
                lines = [await asyncio.wait_for(stream.content.readline(), 5) for _ in range(3)]
                assert lines[0] == b"event: job\n" and lines[2] == b"\n"
                assert lines[1].startswith(b"data: ")
                events.append(json.loads(lines[1][len(b"data: "):]))
        assert [e["state"] for e in events][-1] == "cancelled" and len(events) <= 2
        assert all(e["job_id"] == job_id and e["account_id"] == account for e in events)
