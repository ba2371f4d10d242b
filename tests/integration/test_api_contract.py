"""Cross-cutting parts of the contract: bearer authentication, the error format for unknown
routes and methods, 503 when a database is unreachable, and the OpenAPI document."""

from __future__ import annotations

import json
import re
from typing import Any

from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from scheduler.api import ENDPOINTS
from shared.events import EventHub
from shared.runtime import Runtime
from tests.integration.api_support import assert_error_shape, serve_api
from tools.devservers import free_port

SAMPLE_ID = "000000000000000000000000"


def _concrete(path: str) -> str:
    return re.sub(r"{\w+}", SAMPLE_ID, path)


async def test_every_route_but_openapi_requires_the_token(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        for endpoint in ENDPOINTS:
            if endpoint.public:
                continue
            path = _concrete(endpoint.path)
            for token in (None, "wrong-token", ""):
                reply = await api.call(endpoint.method, path, {}, token=token)
                assert reply.status == 401, (endpoint.method, path, token, reply.status)
                assert_error_shape(reply.body)
                assert reply.body["error"]["code"] == "unauthorized"
                assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        for header in (f"Basic {api.token}", api.token, "Bearer", f"Bearer {api.token}x"):
            reply = await api.call("GET", "/accounts", headers={"Authorization": header})
            assert reply.status == 401, header
        assert (await api.call("GET", "/accounts", headers={
            "Authorization": f"bearer {api.token}"})).status == 200
        # Unknown paths do not reveal themselves to anonymous clients.
        assert (await api.call("GET", "/nowhere", token=None)).status == 401
        async with api.client.get("/healthz") as health:
            assert health.status == 200


async def test_unknown_routes_and_methods_answer_in_the_error_format(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        missing = await api.call("GET", "/nowhere")
        assert missing.status == 404 and missing.body["error"]["code"] == "not_found"
        assert_error_shape(missing.body)
        wrong = await api.call("PUT", "/accounts", {})
        assert wrong.status == 405 and wrong.body["error"]["code"] == "method_not_allowed"
        assert_error_shape(wrong.body)
        assert "POST" in wrong.headers["Allow"]


async def test_unreachable_databases_are_503(runtime: Runtime) -> None:
    dead_mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=300, connect=False)
    dead_redis = Redis(port=free_port(), socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0))
    accounts, redis, hub = runtime.store.accounts, runtime.redis, runtime.event_hub
    try:
        async with serve_api(runtime) as api:
            runtime.store.accounts = dead_mongo["herald"]["accounts"]
            reply = await api.call("GET", "/accounts")
            assert reply.status == 503, reply.body
            assert reply.body["error"]["code"] == "unavailable"
            assert_error_shape(reply.body)
            runtime.store.accounts = accounts

            runtime.redis = dead_redis
            # The streams share one subscription, made on the node's Redis when the first opens.
            runtime.event_hub = EventHub(dead_redis, runtime.keys.events, 10, runtime.spawn)
            for path in ("/cluster", "/events"):
                reply = await api.call("GET", path)
                assert reply.status == 503, (path, reply.body)
                assert reply.body["error"]["code"] == "unavailable"
    finally:
        runtime.store.accounts, runtime.redis, runtime.event_hub = accounts, redis, hub
        await dead_mongo.close()
        await dead_redis.aclose()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


async def test_openapi_lists_every_route(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        async with api.client.get("/api/v1/openapi.json") as response:
            assert response.status == 200
            document = json.loads(await response.text())
        assert document["openapi"] == "3.1.0"
        assert document["components"]["securitySchemes"]["bearer"] == {
            "type": "http", "scheme": "bearer"}
        assert document["security"] == [{"bearer": []}]

        served = {
            (route.method.lower(), route.resource.canonical)
            for route in api.app.router.routes()
            if route.resource is not None and route.resource.canonical.startswith("/api/v1")
            and route.method != "HEAD"
        }
        documented = {(method, path) for path, operations in document["paths"].items()
                      for method in operations}
        assert served == documented and len(served) == len(ENDPOINTS)
        assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []

        schemas = document["components"]["schemas"]
        for ref in _refs(document):
            assert ref.startswith("#/components/schemas/") and ref.rpartition("/")[2] in schemas
        create = document["paths"]["/api/v1/posts"]["post"]
        assert create["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/PostCreate"}
        assert {"201", "400", "401", "422", "503"} <= set(create["responses"])
        params = {p["name"] for p in document["paths"]["/api/v1/jobs"]["get"]["parameters"]}
        assert params == {"limit", "after", "state", "post_id", "account_id", "platform",
                          "error_class", "q", "since", "until", "content_state"}
        assert schemas["AccountCreate"]["additionalProperties"] is False
        assert "credentials" not in schemas["AccountOut"]["properties"]
