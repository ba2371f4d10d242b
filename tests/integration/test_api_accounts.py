"""Accounts through the admin API: the contract's shapes, every field good and bad, credentials
sealed and never shown, pagination, and deletion guarded by unfinished jobs."""

from __future__ import annotations

from typing import Any

from shared.runtime import Runtime
from tests.integration.api_support import (
    HOOK_URL,
    SECRET,
    parse_time,
    serve_api,
    set_job,
    snapshot,
)

GOOD: dict[str, Any] = {"platform": "webhook", "name": "ops-hook", "config": {"url": HOOK_URL},
                        "credentials": {"secret": SECRET}}


def with_(**changes: Any) -> dict[str, Any]:
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not ...}


async def test_create_returns_the_contract_and_seals_credentials(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        reply = await api.call("POST", "/accounts", with_(rate_limit={"per_minute": 60},
                                                          on_unknown="review"))
        assert reply.status == 201
        body = reply.body
        assert {"id", "platform", "name", "config", "status", "created_at"} <= set(body)
        assert body["platform"] == "webhook" and body["name"] == "ops-hook"
        assert body["config"] == {"url": HOOK_URL} and body["status"] == "active"
        assert body["rate_limit"] == {"per_minute": 60} and body["on_unknown"] == "review"
        assert isinstance(body["id"], str)
        parse_time(body["created_at"])
        parse_time(body["updated_at"])
        assert SECRET not in reply.text and "credentials" not in body

        stored = await runtime.store.accounts.find_one({"_id": body["id"]})
        assert stored is not None and SECRET not in str(stored)
        assert runtime.box.open(stored["credentials_enc"]) == {"secret": SECRET}

        for path in ("/accounts", f"/accounts/{body['id']}"):
            listed = await api.call("GET", path)
            assert listed.status == 200 and SECRET not in listed.text
        assert (await api.ok("GET", f"/accounts/{body['id']}")) == body


async def test_create_defaults(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        body = await api.ok("POST", "/accounts", GOOD, status=201)
        assert body["rate_limit"] is None and body["on_unknown"] == "retry"


BAD_CREATES: list[tuple[Any, str]] = [
    (with_(platform=...), "platform"),
    (with_(platform="myspace"), "platform"),
    (with_(platform="mastodon"), "config.url"),  # a webhook's config is not a Mastodon one
    (with_(platform=5), "platform"),
    (with_(name=...), "name"),
    (with_(name=""), "name"),
    (with_(name=7), "name"),
    (with_(name="x" * 201), "name"),
    (with_(config="http://x"), "config"),
    (with_(config={}), "config.url"),
    (with_(config={"url": "ftp://example.com"}), "config.url"),
    (with_(config={"url": HOOK_URL, "colour": "red"}), "config.colour"),
    (with_(config={"url": HOOK_URL, "timeout_seconds": 0}), "config.timeout_seconds"),
    (with_(credentials=[]), "credentials"),
    (with_(credentials={}), "credentials.secret"),
    (with_(credentials={"secret": ""}), "credentials.secret"),
    (with_(credentials={"secret": SECRET, "token": "x"}), "credentials.token"),
    (with_(rate_limit={"per_minute": 0}), "rate_limit.per_minute"),
    (with_(rate_limit={"per_minute": "60"}), "rate_limit.per_minute"),
    (with_(rate_limit={}), "rate_limit"),
    (with_(rate_limit={"per_minute": 5, "burst": 2}), "rate_limit.burst"),
    (with_(rate_limit=60), "rate_limit"),
    (with_(on_unknown="ignore"), "on_unknown"),
    (with_(status="active"), "status"),
    (with_(colour="red"), "colour"),
    ([GOOD], "body"),
]


async def test_create_rejects_each_bad_field_and_stores_nothing(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        for body, field in BAD_CREATES:
            reply = await api.rejected("POST", "/accounts", body, status=422, field=field)
            assert reply.body["error"]["code"] == "validation_error"
            assert SECRET not in reply.text
        reply = await api.rejected("POST", "/accounts", raw=b'{"platform": ', status=400)
        assert reply.body["error"]["code"] == "invalid_json"
        await api.rejected("POST", "/accounts", raw=b"", status=400)
        assert await runtime.store.accounts.count_documents({}) == 0


async def test_list_pages_with_limit_and_after(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        ids = [(await api.account(name=f"hook-{n}"))["id"] for n in range(5)]
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"limit": "2", **({"after": cursor} if cursor else {})}
            page = await api.ok("GET", "/accounts", params=params)
            seen += [a["id"] for a in page["items"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
            assert cursor == page["items"][-1]["id"]
        assert seen == ids and pages == 3
        everything = await api.ok("GET", "/accounts")
        assert [a["id"] for a in everything["items"]] == ids and everything["next"] is None

        for params, field in [({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"),
                              ({"limit": "ten"}, "limit"), ({"after": "nope"}, "after"),
                              ({"sort": "name"}, "sort")]:
            await api.rejected("GET", "/accounts", params=params, status=422, field=field)


async def test_get_unknown_is_404(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        path = "/accounts/000000000000000000000000"
        for reply in [await api.rejected("GET", path, status=404),
                      await api.rejected("PATCH", path, {"name": "x"}, status=404),
                      await api.rejected("DELETE", path, status=404)]:
            assert reply.body["error"]["code"] == "not_found"


async def test_patch_each_field(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        account = await api.account()
        path = f"/accounts/{account['id']}"
        body = await api.ok("PATCH", path, {"name": "renamed"})
        assert body["name"] == "renamed" and body["config"] == {"url": HOOK_URL}

        body = await api.ok("PATCH", path, {"config": {"timeout_seconds": 5}})
        assert body["config"] == {"url": HOOK_URL, "timeout_seconds": 5}
        body = await api.ok("PATCH", path, {"config": {"timeout_seconds": None}})
        assert body["config"] == {"url": HOOK_URL}

        reply = await api.call("PATCH", path, {"credentials": {"secret": "rotated-secret"}})
        assert reply.status == 200 and "rotated-secret" not in reply.text
        stored = await runtime.store.accounts.find_one({"_id": account["id"]})
        assert stored is not None
        assert runtime.box.open(stored["credentials_enc"]) == {"secret": "rotated-secret"}

        body = await api.ok("PATCH", path, {"rate_limit": {"per_minute": 10}})
        assert body["rate_limit"] == {"per_minute": 10}
        body = await api.ok("PATCH", path, {"rate_limit": None})
        assert body["rate_limit"] is None
        body = await api.ok("PATCH", path, {"on_unknown": "review"})
        assert body["on_unknown"] == "review"
        body = await api.ok("PATCH", path, {"status": "disabled"})
        assert body["status"] == "disabled"
        assert parse_time(body["updated_at"]) >= parse_time(body["created_at"])

        for bad, field in [
            ({"name": None}, "name"), ({"name": ""}, "name"),
            ({"config": None}, "config"), ({"config": {"url": "not a url"}}, "config.url"),
            ({"config": {"url": None}}, "config.url"),
            ({"credentials": {"secret": ""}}, "credentials.secret"),
            ({"credentials": {"secret": None}}, "credentials.secret"),
            ({"rate_limit": {"per_minute": -1}}, "rate_limit.per_minute"),
            ({"on_unknown": None}, "on_unknown"), ({"on_unknown": "shrug"}, "on_unknown"),
            ({"status": "deleted"}, "status"), ({"platform": "x"}, "platform"),
        ]:
            await api.rejected("PATCH", path, bad, status=422, field=field)
        await api.rejected("PATCH", path, raw=b"{nope", status=400)


async def _account_with_job(api: Any, runtime: Runtime) -> tuple[str, str]:
    account = await api.account()
    post = await api.post([account["id"]])
    return account["id"], post["jobs"][0]["id"]


async def test_delete_is_guarded_by_unfinished_jobs(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        idle = await api.account(name="idle")
        await api.ok("DELETE", f"/accounts/{idle['id']}", status=204)
        await api.rejected("GET", f"/accounts/{idle['id']}", status=404)

        account_id, job_id = await _account_with_job(api, runtime)
        assert await runtime.queue.contains([job_id]) == {job_id}
        reply = await api.rejected("DELETE", f"/accounts/{account_id}", status=409)
        assert reply.body["error"]["code"] == "conflict"
        await api.rejected("DELETE", f"/accounts/{account_id}", params={"cancel_jobs": "maybe"},
                           status=422, field="cancel_jobs")

        await api.ok("DELETE", f"/accounts/{account_id}", params={"cancel_jobs": "true"},
                     status=204)
        job = await runtime.store.jobs.find_one({"_id": job_id})
        assert job is not None and job["state"] == "cancelled"
        assert await runtime.queue.contains([job_id]) == set()
        assert await runtime.store.accounts.find_one({"_id": account_id}) is None


async def test_delete_waits_for_jobs_being_published(runtime: Runtime) -> None:
    async with serve_api(runtime) as api:
        for state in ("running", "publishing"):
            account_id, job_id = await _account_with_job(api, runtime)
            await set_job(runtime, job_id, state=state)
            before = await snapshot(runtime)
            for params in ({}, {"cancel_jobs": "true"}):
                await api.rejected("DELETE", f"/accounts/{account_id}", params=params,
                                   status=409)
            assert await snapshot(runtime) == before
