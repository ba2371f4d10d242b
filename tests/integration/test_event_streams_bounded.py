"""Many open `/api/v1/events` streams leave the node working: they share one Redis subscription
instead of taking a pooled connection each (redis-py's pool holds 100), so with 300 open the
node stays ready, keeps its leadership and publishes; every stream still gets the events; and
the stream past HERALD_EVENT_STREAMS_MAX is refused with a 503 in the API's error format. When
the shared subscription's connection is lost, the streams that may have missed events end, so
their clients reconnect, and new streams are served again."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from executor.role import ExecutorRole
from scheduler.role import SchedulerRole
from shared.http import HttpServer, make_app
from shared.models import JobState
from shared.node import Role
from shared.runtime import Runtime
from tests.emulators.webhook import WebhookReceiver
from tests.integration.api_support import assert_error_shape, serve_api
from tests.integration.pipeline_support import make_account, make_post, wait_state

STREAMS = 300


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """A cap of exactly the streams opened, and a short leader ttl, so a node starved of Redis
    connections would lose its leadership within the test."""
    return {**env, "HERALD_EVENT_STREAMS_MAX": str(STREAMS), "HERALD_LEADER_TTL_SECONDS": "2"}


@contextlib.asynccontextmanager
async def node(rt: Runtime) -> AsyncIterator[str]:
    """The scheduler and executor roles and the HTTP server, assembled as `herald all` does;
    yields the server's base URL."""
    roles: list[Role] = [SchedulerRole(rt), ExecutorRole(rt)]
    app = make_app(rt)
    for role in roles:
        role.add_routes(app)
    server = HttpServer(app, keepalive_timeout=75, header_timeout=10)
    port = await server.start("127.0.0.1", 0)
    tasks = [asyncio.create_task(r.run()) for r in roles]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.gather(*(r.stop() for r in roles))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()


async def leader_token(rt: Runtime) -> str:
    async with asyncio.timeout(20):
        while True:
            token = await rt.redis.get(rt.keys.leader)
            if token is not None and token.decode().startswith(f"{rt.settings.node_id}:"):
                return str(token.decode())
            await asyncio.sleep(0.05)


async def open_stream(session: aiohttp.ClientSession, url: str,
                      token: str) -> aiohttp.ClientResponse:
    stream = await session.get(f"{url}/api/v1/events",
                               headers={"Authorization": f"Bearer {token}"})
    assert stream.status == 200, await stream.text()
    assert await stream.content.readline() == b": subscribed\n"
    assert await stream.content.readline() == b"\n"
    return stream


async def wait_for_event(stream: aiohttp.ClientResponse, job_id: str, state: str) -> None:
    while True:
        line = await stream.content.readline()
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            event = json.loads(line[len(b"data: "):])
            if event["job_id"] == job_id and event["state"] == state:
                return


async def test_300_streams_leave_the_node_ready_leading_and_publishing(
    runtime: Runtime, receiver: WebhookReceiver
) -> None:
    token = runtime.settings.admin_token
    async with (
        asyncio.timeout(120),  # a hang guard only
        node(runtime) as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        leader = await leader_token(runtime)
        streams = list(await asyncio.gather(
            *(open_stream(session, url, token) for _ in range(STREAMS))))
        try:
            async with session.get(f"{url}/api/v1/events",
                                   headers={"Authorization": f"Bearer {token}"}) as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"]
                body = await refused.json()
                assert_error_shape(body)
                assert body["error"]["code"] == "too_many_streams"

            async with session.get(f"{url}/readyz") as ready:
                assert ready.status == 200, await ready.text()

            account = await make_account(runtime, receiver)
            due = runtime.clock.now_dt() + timedelta(milliseconds=300)
            _, (job,) = await make_post(runtime, [account], due)
            await wait_state(runtime, job["_id"], {JobState.SUCCEEDED}, timeout=30)
            assert job["_id"] in receiver.accepted
            await asyncio.gather(
                *(wait_for_event(s, job["_id"], "succeeded") for s in streams))

            assert await runtime.redis.get(runtime.keys.leader) == leader.encode()
            async with session.get(f"{url}/readyz") as ready:
                assert ready.status == 200, await ready.text()

            # A stream whose client left frees its place.
            streams.pop().close()
            while True:
                async with session.get(f"{url}/api/v1/events",
                                       headers={"Authorization": f"Bearer {token}"}) as again:
                    if again.status == 200:
                        break
                    assert again.status == 503
                await asyncio.sleep(0.2)
        finally:
            for stream in streams:
                stream.close()


async def test_a_lost_subscription_ends_the_streams_and_is_renewed(runtime: Runtime) -> None:
    async with asyncio.timeout(60), serve_api(runtime) as api:  # a hang guard only
        headers = {"Authorization": f"Bearer {api.token}"}
        async with api.client.get("/api/v1/events", headers=headers) as stream:
            assert await stream.content.readline() == b": subscribed\n"
            await runtime.redis.client_kill_filter(_type="pubsub")
            while await stream.content.readline():
                pass

        async with api.client.get("/api/v1/events", headers=headers) as stream:
            assert await stream.content.readline() == b": subscribed\n"
            runtime.events.emit({"job_id": "job-1", "state": "staged"})
            await runtime.events.flush()
            await wait_for_event(stream, "job-1", "staged")
