"""Generated content's test servers: feeds served locally (RSS, Atom, malformed, undated, out of
date order, with ETag and Last-Modified), the LLM emulator, and the feed item store over the
test's own database. Test modules import the fixtures they use from here."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
import pytest
from aiohttp import web

from shared.generation.feed_items import FeedItems
from shared.generation.llm import LanguageModel
from shared.media.fetch import fetch_session
from shared.runtime import Runtime
from tests.emulators.llm import API_KEY, LlmEmulator
from tests.emulators.platform import listen

RSS_TYPE = "application/rss+xml"
ATOM_TYPE = "application/atom+xml"


@dataclass
class Entry:
    title: str | None = None
    link: str | None = None
    guid: str | None = None
    published: datetime | None = None
    summary: str | None = None


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def rss(entries: Sequence[Entry], title: str = "Test feed") -> bytes:
    """An RSS 2.0 document listing `entries` in the order given."""
    items = []
    for e in entries:
        parts = []
        if e.title is not None:
            parts.append(f"<title>{escape(e.title)}</title>")
        if e.link is not None:
            parts.append(f"<link>{escape(e.link)}</link>")
        if e.guid is not None:
            parts.append(f'<guid isPermaLink="false">{escape(e.guid)}</guid>')
        if e.published is not None:
            parts.append(f"<pubDate>{format_datetime(e.published, usegmt=True)}</pubDate>")
        if e.summary is not None:
            parts.append(f"<description>{escape(e.summary)}</description>")
        items.append(f"<item>{''.join(parts)}</item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>https://example.org/</link>"
            f"<description>d</description>{''.join(items)}</channel></rss>").encode()


def atom(entries: Sequence[Entry], title: str = "Test feed") -> bytes:
    """An Atom 1.0 document listing `entries` in the order given."""
    items = []
    for e in entries:
        parts = [f"<title>{escape(e.title or '')}</title>"]
        if e.link is not None:
            parts.append(f'<link rel="alternate" href="{escape(e.link)}"/>')
        if e.guid is not None:
            parts.append(f"<id>{escape(e.guid)}</id>")
        if e.published is not None:
            parts.append(f"<updated>{e.published.isoformat()}</updated>")
        if e.summary is not None:
            parts.append(f'<summary type="html">{escape(e.summary)}</summary>')
        items.append(f"<entry>{''.join(parts)}</entry>")
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>{escape(title)}</title><id>urn:test:feed</id>"
            f"<updated>2026-01-01T00:00:00Z</updated>{''.join(items)}</feed>").encode()


@dataclass
class Served:
    body: bytes
    content_type: str = RSS_TYPE
    status: int = 200
    #: Seconds before the answer.
    delay: float = 0.0
    #: Validators sent with each answer, and honoured in conditional requests.
    etag: bool = True
    last_modified: str | None = None
    redirect: str | None = None


@dataclass
class FeedServer:
    """Feeds at `/<name>`, changed by assigning `feeds[name]`; every request is kept."""

    feeds: dict[str, Served] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answers, keeping the request's name, headers and the status answered."""
        seen: dict[str, Any] = {"name": request.match_info["name"],
                                "headers": dict(request.headers)}
        self.requests.append(seen)
        try:
            response = await self._answer(request)
        except web.HTTPException as exc:
            seen["status"] = exc.status
            raise
        seen["status"] = response.status
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        served = self.feeds.get(request.match_info["name"])
        if served is None:
            return web.Response(status=404)
        if served.delay:
            await asyncio.sleep(served.delay)
        if served.redirect is not None:
            raise web.HTTPFound(served.redirect)
        headers = {"Content-Type": served.content_type}
        etag = f'"{hashlib.sha256(served.body).hexdigest()[:16]}"'
        if served.etag:
            headers["ETag"] = etag
        if served.last_modified:
            headers["Last-Modified"] = served.last_modified
        if served.status == 200 and (
                (served.etag and request.headers.get("If-None-Match") == etag)
                or (served.last_modified
                    and request.headers.get("If-Modified-Since") == served.last_modified)):
            return web.Response(status=304, headers=headers)
        return web.Response(body=served.body, status=served.status, headers=headers)


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    app = web.Application()
    app.router.add_get("/{name}", server.handle)
    runner, server.base_url = await listen(app)
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[aiohttp.ClientSession]:
    """The guarded session feeds are fetched with, private addresses allowed (the feed server
    is on loopback); tests of the guard itself make their own."""
    async with fetch_session(allow_private=True) as session:
        yield session


@pytest.fixture
async def llm_emulator() -> AsyncIterator[LlmEmulator]:
    emulator = LlmEmulator()
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def model(llm_emulator: LlmEmulator) -> AsyncIterator[LanguageModel]:
    lm = LanguageModel(f"{llm_emulator.base_url}/v1", API_KEY, "herald-test-model",
                       timeout=5.0, max_retries=2)
    try:
        yield lm
    finally:
        await lm.close()


@pytest.fixture
async def feed_items(runtime: Runtime) -> FeedItems:
    store = FeedItems(runtime.store.db)
    await store.ensure_indexes()
    return store
