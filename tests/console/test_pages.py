"""Every console page renders for a signed-in session, with data in every state, and carries
the security headers; without a session a page sends the browser to sign in. (The browser
tests drive the flows; this checks each page cheaply over HTTP.)"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from scheduler.api import add_api_routes
from scheduler.console import add_console_routes
from shared.config import Settings
from shared.http import make_app
from shared.runtime import Runtime
from tests.integration.api_support import TELEGRAM, Api, at, set_job
from tests.integration.platform_support import started, with_oauth_clients
from tests.integration.test_oauth_connect import authorize, connect_body

VIEWER = "pages-viewer-token"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "HERALD_VIEWER_TOKEN": VIEWER, "HERALD_CONSOLE_SECURE_COOKIE": "false"}


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[TestClient[Any, Any]]:
    async with serve_node(runtime) as made:
        yield made


@asynccontextmanager
async def serve_node(rt: Runtime) -> AsyncIterator[TestClient[Any, Any]]:
    """What a scheduler node serves: the API and the console."""
    app = make_app(rt)
    add_api_routes(app)
    add_console_routes(app)
    async with TestClient(TestServer(app, host="127.0.0.1")) as made:
        yield made


async def sign_in(client: TestClient[Any, Any], token: str) -> str:
    """Sign in through the form; the session's CSRF token."""
    form = await (await client.get("/console/login")).text()
    login_token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert login_token is not None
    reply = await client.post("/console/login", data={
        "login_token": login_token.group(1), "token": token, "next": "/console/"})
    page = await reply.text()
    assert reply.status == 200, page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    return csrf.group(1)


async def test_every_page_renders(runtime: Runtime, client: TestClient[Any, Any]) -> None:
    api = Api(client, client.app, runtime)  # type: ignore[arg-type]
    hook = (await api.account())["id"]
    telegram = (await api.account(**TELEGRAM))["id"]
    jobs = []
    for i, state in enumerate(["failed", "unconfirmed", "succeeded", "staged", "retry_wait"]):
        post = await api.post([hook, telegram], content={"text": f"post {i} <b>bold</b>"},
                              schedule={"at": at(runtime, hours=i + 1)})
        job_id = post["jobs"][0]["id"]
        await set_job(runtime, job_id, state=state, error="permanent: 400 <script>x</script>",
                      result={"platform_post_id": "1", "url": "javascript:alert(1)"})
        jobs.append(job_id)
    waiting = (await api.post([hook], content={"text": "generated <b>bold</b>"},
                              schedule={"at": at(runtime, hours=2)}))["jobs"][0]["id"]
    await set_job(runtime, waiting, content_state="awaiting_approval",
                  content={"text": "generated <b>bold</b>", "media": []},
                  generation={"model": "m", "prompt": "<script>x</script>", "usage": {},
                              "item": {"title": "<b>bold</b>", "link": "javascript:alert(1)"},
                              "at": runtime.clock.now_dt()})
    jobs.append(waiting)
    await runtime.store.accounts.update_one({"_id": telegram}, {"$set": {
        "status": "reauth_required", "status_reason": "refresh refused"}})

    anonymous = await client.get("/console/jobs?state=failed", allow_redirects=False)
    assert anonymous.status == 303
    location = urlsplit(anonymous.headers["Location"])
    assert location.path == "/console/login"
    assert parse_qs(location.query)["next"] == ["/console/jobs?state=failed"]

    await sign_in(client, runtime.settings.admin_token)
    pages = ["/console/", "/console/upcoming", "/console/jobs", "/console/jobs?state=failed",
             "/console/jobs?state=unconfirmed&q=post", "/console/jobs?error_class=permanent"
             "&since=2020-01-01T00:00&platform=webhook", "/console/accounts",
             "/console/audit", "/console/approvals", f"/console/approvals?account_id={hook}",
             "/console/jobs?content_state=awaiting_approval",
             *(f"/console/jobs/{j}" for j in jobs),
             f"/console/jobs?post_id={post['id']}"]
    for path in pages:
        reply = await client.get(path)
        text = await reply.text()
        assert reply.status == 200, (path, text[-2000:])
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "<script>" not in text and "<b>bold</b>" not in text, path
        assert 'href="javascript:' not in text, path
    queue = await (await client.get("/console/approvals")).text()
    assert f'data-job-id="{waiting}"' in queue and "generated &lt;b&gt;bold&lt;/b&gt;" in queue
    assert '<span class="badge">1</span>' in queue
    bad = await client.get("/console/jobs?since=yesterday")
    assert bad.status == 422 and "since" in await bad.text()
    missing = await client.get("/console/jobs/000000000000000000000000")
    assert missing.status == 404


async def test_sign_in_refuses_a_wrong_token_and_a_forged_form(
        client: TestClient[Any, Any]) -> None:
    form = await (await client.get("/console/login")).text()
    login_token = re.search(r'name="login_token" value="([^"]+)"', form)
    assert login_token is not None
    wrong = await client.post("/console/login", data={
        "login_token": login_token.group(1), "token": "wrong-token"})
    assert wrong.status == 401
    client.session.cookie_jar.clear()
    forged = await client.post("/console/login", data={
        "login_token": "made-up", "token": VIEWER})
    assert forged.status == 403
    assert (await client.get("/console/", allow_redirects=False)).status == 303


async def test_sign_out_ends_the_session(runtime: Runtime,
                                         client: TestClient[Any, Any]) -> None:
    csrf = await sign_in(client, VIEWER)
    assert (await client.get("/console/", allow_redirects=False)).status == 200
    out = await client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/console/", allow_redirects=False)).status == 303


async def test_reconnect_through_oauth_from_the_accounts_page(settings: Settings) -> None:
    """The console starts the connect with the same code as the API and sends the browser to
    the platform, whose callback gives the account its new credentials; both are audited."""
    rt = await Runtime.open(with_oauth_clients(settings))
    try:
        async with started("x") as emulator, serve_node(rt) as client:
            api = Api(client, client.app, rt)  # type: ignore[arg-type]
            first = await api.ok("POST", "/accounts/connect", connect_body(api, emulator, "x"),
                                 status=201)
            back = await authorize(first["authorize_url"])
            account = (await api.call("GET", "/oauth/callback", token=None, params=back)
                       ).body["account"]
            await rt.store.accounts.update_one({"_id": account["id"]}, {"$set": {
                "status": "reauth_required", "status_reason": "refresh refused"}})

            csrf = await sign_in(client, rt.settings.admin_token)
            page = await (await client.get("/console/accounts")).text()
            assert "refresh refused" in page and f"Reconnect {account['name']}" in page
            sent = await client.post(f"/console/accounts/{account['id']}/reconnect",
                                     data={"csrf": csrf}, allow_redirects=False)
            assert sent.status == 303
            to_platform = sent.headers["Location"]
            assert parse_qs(urlsplit(to_platform).query)["redirect_uri"] == [
                str(client.make_url("/api/v1/oauth/callback"))]
            back = await authorize(to_platform)
            reply = await api.call("GET", "/oauth/callback", token=None, params=back)
            assert reply.status == 200, reply.body
            assert reply.body["account"]["id"] == account["id"]
            assert reply.body["account"]["status"] == "active"

            entries = (await api.ok("GET", "/audit"))["items"]
            assert [(e["actor"], e["action"], e["target"]) for e in entries[:2]] == [
                ("api:oauth-callback", "GET /oauth/callback", account["id"]),
                ("console:admin", "POST /accounts/connect", account["id"])]
            assert "code" not in entries[0]["details"].get("query", {})
            assert "state" not in entries[0]["details"].get("query", {})
    finally:
        await rt.store.client.drop_database(rt.store.db.name)
        await rt.close()


async def test_console_actions_change_through_the_api_code_and_are_audited(
        runtime: Runtime, client: TestClient[Any, Any]) -> None:
    api = Api(client, client.app, runtime)  # type: ignore[arg-type]
    hook = (await api.account())["id"]
    failed = []
    for i in range(2):
        job_id = (await api.post([hook], content={"text": f"bulk {i}"}))["jobs"][0]["id"]
        await set_job(runtime, job_id, state="failed", error="transient: 503")
        failed.append(job_id)
    csrf = await sign_in(client, runtime.settings.admin_token)
    page = await (await client.get("/console/jobs?state=failed")).text()
    assert 'name="expected_count" value="2"' in page

    stale = await client.post("/console/jobs/retry", data={
        "csrf": csrf, "state": "failed", "expected_count": "3"}, allow_redirects=False)
    assert stale.status == 409 and "matches 2 job(s) now" in await stale.text()
    assert {(await api.ok("GET", f"/jobs/{j}"))["state"] for j in failed} == {"failed"}
    done = await client.post("/console/jobs/retry", data={
        "csrf": csrf, "state": "failed", "expected_count": "2"}, allow_redirects=False)
    assert done.status == 303
    # The page it goes back to carries the note `done`, which is no filter.
    assert (await client.get(done.headers["Location"])).status == 200
    assert {(await api.ok("GET", f"/jobs/{j}"))["state"] for j in failed} <= {"pending",
                                                                            "staged"}

    paused = await client.post("/console/cluster/pause", data={
        "csrf": csrf, "reason": "incident 42"}, allow_redirects=False)
    assert paused.status == 303
    assert (await api.ok("GET", "/cluster"))["paused"]["by"] == "console:admin"
    assert "Publishing is paused" in await (await client.get("/console/jobs")).text()
    await client.post("/console/cluster/resume", data={"csrf": csrf})
    assert (await api.ok("GET", "/cluster"))["paused"] is None

    await client.post(f"/console/accounts/{hook}/status", data={"csrf": csrf,
                                                                "status": "disabled"})
    assert (await api.ok("GET", f"/accounts/{hook}"))["status"] == "disabled"
    await client.post(f"/console/jobs/{failed[0]}/cancel", data={"csrf": csrf})
    assert (await api.ok("GET", f"/jobs/{failed[0]}"))["state"] == "cancelled"

    entries = (await api.ok("GET", "/audit", params={"actor": "console:admin"}))["items"]
    assert [e["action"] for e in entries] == [
        "POST /jobs/{id}/cancel", "PATCH /accounts/{id}", "POST /cluster/resume",
        "POST /cluster/pause", "POST /jobs/retry"]
    assert entries[-1]["details"]["retried"] == 2


async def test_approval_actions_go_through_the_api_code_and_are_audited(
        runtime: Runtime, client: TestClient[Any, Any]) -> None:
    api = Api(client, client.app, runtime)  # type: ignore[arg-type]
    telegram = (await api.account(**TELEGRAM))["id"]
    waiting = []
    for i in range(4):
        post = await api.post([telegram], content={
            "template": f"Post {i} for {{{{ account.name }}}}", "approval": "required"},
            schedule={"at": at(runtime, hours=i + 1)})
        job_id = post["jobs"][0]["id"]
        # What the generation lane leaves (no executor runs here).
        await set_job(runtime, job_id, content_state="awaiting_approval",
                      content={"text": f"Post {i} for ops-telegram", "media": []},
                      generation={"at": runtime.clock.now_dt(), "model": None, "prompt": None,
                                  "usage": {}, "item": None})
        waiting.append(job_id)
    as_is, edited, rejected, again = waiting
    csrf = await sign_in(client, runtime.settings.admin_token)
    queue = await (await client.get("/console/approvals")).text()
    listed = [queue.index(f'data-job-id="{j}"') for j in waiting]
    assert listed == sorted(listed)  # soonest scheduled first
    first = await (await client.get("/console/approvals?limit=2")).text()
    later = re.search(r'href="(/console/approvals\?[^"]+)">Later jobs', first)
    assert later is not None
    second = await (await client.get(html.unescape(later.group(1)))).text()
    assert [j for j in waiting if f'data-job-id="{j}"' in first] == waiting[:2]
    assert [j for j in waiting if f'data-job-id="{j}"' in second] == waiting[2:]

    unchanged = await client.post(f"/console/jobs/{as_is}/approve", data={
        "csrf": csrf, "text": "Post 0 for ops-telegram"}, allow_redirects=False)
    assert unchanged.status == 303
    assert unchanged.headers["Location"] == f"/console/jobs/{as_is}?done=approved"
    job = await api.ok("GET", f"/jobs/{as_is}")
    assert (job["content_state"], job["content"]["text"]) == (
        "approved", "Post 0 for ops-telegram")

    too_long = await client.post(f"/console/jobs/{edited}/approve", data={
        "csrf": csrf, "text": "x" * 5000, "back": "approvals"}, allow_redirects=False)
    assert too_long.status == 422 and "text" in await too_long.text()
    assert (await api.ok("GET", f"/jobs/{edited}"))["content_state"] == "awaiting_approval"
    done = await client.post(f"/console/jobs/{edited}/approve", data={
        "csrf": csrf, "text": "Edited\r\nby an operator", "back": "approvals"},
        allow_redirects=False)
    assert done.status == 303
    assert done.headers["Location"] == "/console/approvals?done=approved"
    job = await api.ok("GET", f"/jobs/{edited}")
    assert (job["content_state"], job["content"]["text"]) == (
        "approved", "Edited\nby an operator")
    twice = await client.post(f"/console/jobs/{edited}/approve", data={
        "csrf": csrf, "text": "Once more"}, allow_redirects=False)
    assert twice.status == 409
    assert (await api.ok("GET", f"/jobs/{edited}"))["content"]["text"] == (
        "Edited\nby an operator")

    await client.post(f"/console/jobs/{rejected}/reject", data={"csrf": csrf})
    job = await api.ok("GET", f"/jobs/{rejected}")
    assert (job["state"], job["content_state"]) == ("cancelled", "rejected")
    await client.post(f"/console/jobs/{again}/regenerate", data={"csrf": csrf})
    assert (await api.ok("GET", f"/jobs/{again}"))["content_state"] == "pending"
    queue = await (await client.get("/console/approvals")).text()
    assert "Nothing waits for approval." in queue
    assert 'class="badge"' not in queue

    entries = (await api.ok("GET", "/audit", params={"actor": "console:admin"}))["items"]
    assert [(e["action"], e["target"], e["details"]) for e in entries] == [
        ("POST /jobs/{id}/regenerate", again, {}),
        ("POST /jobs/{id}/reject", rejected, {}),
        ("POST /jobs/{id}/approve", edited, {"text": "Edited\nby an operator"}),
        ("POST /jobs/{id}/approve", as_is, {})]
