"""The admin API served on a real loopback socket against the test's runtime, plus helpers to
arrange data and to check the error contract: a rejected request answers in the error format,
names the field, and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from scheduler.api import add_api_routes
from shared.http import make_app
from shared.runtime import Runtime
from shared.store import Doc

SECRET = "s3cr3t-webhook-key"
HOOK_URL = "http://127.0.0.1:9/hook"
_NO_BODY: Any = object()
#: An account on a platform with a short text limit (4,096) and no call at creation.
TELEGRAM: dict[str, Any] = {"platform": "telegram", "name": "ops-telegram",
                            "config": {"chat_id": "@herald_ops"},
                            "credentials": {"bot_token": "123456789:" + "A" * 35}}


@dataclass
class Reply:
    status: int
    body: Any
    text: str
    headers: CIMultiDictProxy[str]


class Api:
    def __init__(self, client: TestClient[Any, Any], app: web.Application, rt: Runtime) -> None:
        self.client = client
        self.app = app
        self.rt = rt
        self.token = rt.settings.admin_token

    async def call(
        self, method: str, path: str, body: Any = _NO_BODY, *, raw: bytes | None = None,
        token: str | None = "default", params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request to /api/v1`path`; `token=None` sends no Authorization header."""
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization",
                            f"Bearer {self.token if token == 'default' else token}")
        kwargs: dict[str, Any] = {"headers": sent, "params": params}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not _NO_BODY:
            kwargs["json"] = body
        async with self.client.request(method, f"/api/v1{path}", **kwargs) as response:
            text = await response.text()
            parsed = await response.json(content_type=None) if text else None
            return Reply(response.status, parsed, text, response.headers)

    async def ok(self, method: str, path: str, body: Any = _NO_BODY, *, status: int = 200,
                 params: dict[str, str] | None = None) -> Any:
        reply = await self.call(method, path, body, params=params)
        assert reply.status == status, (reply.status, reply.body)
        return reply.body

    async def rejected(self, method: str, path: str, body: Any = _NO_BODY, *, status: int,
                       field: str | None = None, raw: bytes | None = None,
                       params: dict[str, str] | None = None) -> Reply:
        """The request fails with `status` in the error format, naming `field` in its details,
        and leaves MongoDB and the due queue exactly as they were."""
        before = await snapshot(self.rt)
        reply = await self.call(method, path, body, raw=raw, params=params)
        assert reply.status == status, (reply.status, reply.body)
        assert_error_shape(reply.body)
        if field is not None:
            fields = [d["field"] for d in reply.body["error"]["details"]]
            assert field in fields, (field, reply.body)
        assert await snapshot(self.rt) == before, "a rejected request changed something"
        return reply

    async def account(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"platform": "webhook", "name": "ops-hook",
                                "config": {"url": HOOK_URL}, "credentials": {"secret": SECRET}}
        body.update(overrides)
        created: dict[str, Any] = await self.ok("POST", "/accounts", body, status=201)
        return created

    async def post(self, account_ids: list[str], **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"account_ids": account_ids, "content": {"text": "Hello"},
                                "schedule": {"at": at(self.rt, minutes=5)}}
        body.update(overrides)
        created: dict[str, Any] = await self.ok("POST", "/posts", body, status=201)
        return created


@asynccontextmanager
async def serve_api(rt: Runtime) -> AsyncIterator[Api]:
    app = make_app(rt)
    add_api_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Api(client, app, rt)


def assert_error_shape(body: Any) -> None:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    for detail in error["details"]:
        assert set(detail) == {"field", "message"}, body
        assert isinstance(detail["field"], str) and isinstance(detail["message"], str)


async def snapshot(rt: Runtime) -> dict[str, Any]:
    """Everything a request could change: every stored document and every queued job."""
    state: dict[str, Any] = {}
    for name in ("accounts", "posts", "jobs"):
        state[name] = await rt.store.db[name].find().sort("_id", 1).to_list()
    state["queue"] = [await rt.redis.zrange(key, 0, -1, withscores=True)
                      for key in rt.keys.lanes]
    return state


def now(rt: Runtime) -> datetime:
    return rt.clock.now_dt()


def at(rt: Runtime, **delta: float) -> str:
    """An RFC 3339 time relative to cluster time, with an offset as the API requires."""
    return (now(rt) + timedelta(**delta)).isoformat()


def z(value: datetime) -> str:
    """A time as the API renders it."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value).astimezone(UTC)


async def set_job(rt: Runtime, job_id: str, **fields: Any) -> None:
    """Fixture arrangement: put a job into a state as an executor would have left it."""
    await rt.store.jobs.update_one({"_id": job_id}, {"$set": fields})


async def job_doc(rt: Runtime, job_id: str) -> Doc:
    doc = await rt.store.jobs.find_one({"_id": job_id})
    assert doc is not None
    return doc
