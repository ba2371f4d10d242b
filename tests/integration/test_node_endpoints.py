"""Every node's own endpoints, and what they say while MongoDB is down: /healthz stays up,
/readyz and the API answer 503, and both recover when MongoDB is back."""

from __future__ import annotations

import asyncio
import signal

import pytest
from pymongo.errors import AutoReconnect

from shared.config import Settings
from shared.runtime import Runtime
from shared.store import Store
from tests.integration.api_support import serve_api
from tools import devservers

METRICS = (
    "herald_jobs_total", "herald_job_lateness_seconds_bucket", "herald_due_queue_depth",
    "herald_leader", "herald_leader_transitions_total", "herald_lease_losses_total",
    "herald_sweep_repairs_total", "herald_sweep_duration_seconds",
    "herald_sweep_last_success_timestamp_seconds", "herald_rate_limit_deferrals_total",
    "herald_provider_errors_total", "herald_publish_duration_seconds",
    "herald_oldest_pending_age_seconds",
)


async def test_health_ready_and_metrics(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        health = await api.client.get("/healthz")
        assert health.status == 200 and (await health.json())["status"] == "ok"
        ready = await api.client.get("/readyz")
        assert ready.status == 200
        assert await ready.json() == {"status": "ok", "mongodb": "ok", "redis": "ok"}
        metrics = await api.client.get("/metrics")
        text = await metrics.text()
    assert metrics.status == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    # Labelled series appear once used; their HELP lines are there from the start.
    for name in METRICS:
        base = name.removesuffix("_total").removesuffix("_bucket")
        assert f"# HELP {base}" in text, name


async def test_mongodb_outage_is_503_and_recovers(settings: Settings) -> None:
    port = devservers.free_port()
    mongo = devservers.start_mongo(port)
    rt = await Runtime.open(settings.model_copy(
        update={"mongodb_uri": f"mongodb://127.0.0.1:{port}/outage"}))
    try:
        async with serve_api(rt) as api:
            assert (await api.client.get("/readyz")).status == 200
            mongo.stop()
            assert (await api.client.get("/healthz")).status == 200
            ready = await api.client.get("/readyz")
            assert ready.status == 503
            body = await ready.json()
            assert body["status"] == "unavailable" and body["mongodb"].startswith("unreachable")
            assert body["redis"] == "ok"
            reply = await api.call("GET", "/posts")
            assert reply.status == 503 and reply.body["error"]["code"] == "unavailable"
            mongo = devservers.start_mongo(port)
            async with asyncio.timeout(30):
                while (await api.client.get("/readyz")).status != 200:
                    await asyncio.sleep(0.2)
            assert (await api.call("GET", "/posts")).status == 200
    finally:
        await rt.close()
        mongo.stop()


async def test_a_frozen_mongodb_fails_calls_instead_of_holding_them(settings: Settings) -> None:
    """A server that stops answering on an open connection (SIGSTOP here; a dead peer without
    a reset in production) makes calls fail after the socket timeout: pymongo's default is to
    wait forever, which would hold a claim, and the job lock renewed around it, for good."""
    port = devservers.free_port()
    mongo = devservers.start_mongo(port)
    store = Store(f"mongodb://127.0.0.1:{port}/frozen", "frozen", socket_timeout_ms=1000)
    try:
        await store.jobs.insert_one({"_id": "j"})
        mongo.proc.send_signal(signal.SIGSTOP)
        try:
            async with asyncio.timeout(60):  # a hang guard only; the figure is not the point
                with pytest.raises(AutoReconnect):
                    await store.jobs.find_one({"_id": "j"})
        finally:
            mongo.proc.send_signal(signal.SIGCONT)
        assert await store.jobs.find_one({"_id": "j"}) == {"_id": "j"}
    finally:
        await store.close()
        mongo.stop()
