"""Notifier against a small in-process HTTP server: shape, retries, giving up quietly."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from shared.notify import Notifier
from tests.integration.pipeline_support import AdminHook


@pytest.fixture
async def hook() -> AsyncIterator[AdminHook]:
    h = AdminHook()
    await h.start()
    yield h
    await h.stop()


def notifier(session: aiohttp.ClientSession, url: str | None) -> Notifier:
    return Notifier(session, url, backoff_seconds=0.01, timeout_seconds=2)


async def test_posts_event_time_and_payload(
    hook: AdminHook, session: aiohttp.ClientSession
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    await notifier(session, hook.url).notify("job_failed", {
        "job_id": "j1", "post_id": "p1", "account_id": "a1", "state": "failed",
        "error": "webhook answered 400", "scheduled_for": datetime(2026, 1, 1, tzinfo=UTC),
        "credentials": {"secret": "hunter2"},
    })
    [body] = hook.bodies
    at = body.pop("at")
    assert at.endswith("Z") and before <= datetime.fromisoformat(at) <= datetime.now(UTC)
    assert body == {
        "event": "job_failed", "job_id": "j1", "post_id": "p1", "account_id": "a1",
        "state": "failed", "error": "webhook answered 400",
        "scheduled_for": "2026-01-01T00:00:00.000Z", "credentials": "[redacted]",
    }


async def test_links_a_job_to_its_console_page_when_the_console_url_is_set(
    hook: AdminHook, session: aiohttp.ClientSession
) -> None:
    linked = Notifier(session, hook.url, console_url="https://herald.example/console")
    await linked.notify("job.failed", {"job_id": "j9", "error": "permanent: 400"})
    await notifier(session, hook.url).notify("job.failed", {"job_id": "j9"})
    assert hook.bodies[0]["console_url"] == "https://herald.example/console/jobs/j9"
    assert "console_url" not in hook.bodies[1]


async def test_retries_server_errors_then_succeeds(
    hook: AdminHook, session: aiohttp.ClientSession
) -> None:
    hook.statuses = [500, 429]
    await notifier(session, hook.url).notify("job_unconfirmed", {"job_id": "j2"})
    assert len(hook.bodies) == 3


async def test_gives_up_after_three_tries_without_raising(
    hook: AdminHook, session: aiohttp.ClientSession
) -> None:
    hook.statuses = [503] * 10
    await notifier(session, hook.url).notify("job_failed", {"job_id": "j3"})
    assert len(hook.bodies) == 3


async def test_client_errors_are_not_retried(
    hook: AdminHook, session: aiohttp.ClientSession
) -> None:
    hook.statuses = [400, 400]
    await notifier(session, hook.url).notify("job_failed", {"job_id": "j4"})
    assert len(hook.bodies) == 1


async def test_unreachable_hook_does_not_raise(session: aiohttp.ClientSession) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    await notifier(session, f"http://127.0.0.1:{port}/notify").notify("job_failed", {})


async def test_no_url_is_a_no_op(session: aiohttp.ClientSession) -> None:
    await notifier(session, None).notify("job_failed", {"job_id": "j5"})
