"""The operator's console (API.md "Console", DESIGN §10): server-rendered pages at /console/ on
every scheduler node, over the same services as the admin API, with one small script for live
updates from the events stream and no frontend build."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from scheduler.api import events
from scheduler.console import actions, pages, signin
from scheduler.console.frame import BASE, error_pages, jinja_filters, security_headers, signed_in

HERE = Path(__file__).parent


async def _to_console(_request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": f"{BASE}/"})


def add_console_routes(app: web.Application) -> None:
    console = web.Application(middlewares=[security_headers, error_pages, signed_in])
    aiohttp_jinja2.setup(
        console, loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True, filters=jinja_filters(),
        trim_blocks=True, lstrip_blocks=True)
    r = console.router
    r.add_get("/login", signin.login_form, name="login_form")
    r.add_post("/login", signin.login, name="login")
    r.add_post("/logout", signin.logout, name="logout")
    r.add_get("/", pages.overview)
    r.add_get("/upcoming", pages.upcoming)
    r.add_get("/jobs", pages.job_list)
    r.add_post("/jobs/retry", actions.retry_jobs)
    r.add_get("/jobs/{id}", pages.job_page)
    r.add_get("/jobs/{id}/state", pages.job_state)
    r.add_post("/jobs/{id}/retry", actions.retry_job)
    r.add_post("/jobs/{id}/cancel", actions.cancel_job)
    r.add_post("/jobs/{id}/resolve", actions.resolve_job)
    r.add_post("/jobs/{id}/approve", actions.approve_job)
    r.add_post("/jobs/{id}/reject", actions.reject_job)
    r.add_post("/jobs/{id}/regenerate", actions.regenerate_job)
    r.add_get("/approvals", pages.approvals)
    r.add_get("/accounts", pages.accounts_page)
    r.add_post("/accounts/{id}/status", actions.account_status)
    r.add_post("/accounts/{id}/reconnect", actions.reconnect_account)
    r.add_post("/cluster/pause", actions.pause_cluster)
    r.add_post("/cluster/resume", actions.resume_cluster)
    r.add_get("/audit", pages.audit_page)
    # The API's live stream, behind the console's session instead of a bearer token.
    r.add_get("/events", events.stream_events)
    r.add_static("/static", HERE / "static")
    events.install(console)
    app.router.add_get(BASE, _to_console)
    app.add_subapp(BASE, console)
