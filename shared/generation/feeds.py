"""`content.source.feed`: an RSS or Atom feed fetched and read into items.

Fetched through the media URL guard (shared/media/fetch.py: no private or loopback address
unless HERALD_ALLOW_PRIVATE_URLS, redirects checked hop by hop), within FEED_SECONDS and
FEED_MAX_BYTES, and conditionally: the ETag and Last-Modified of the last answer are sent back,
and a 304 means the feed holds nothing new. feedparser reads every RSS and Atom dialect and
survives the usual malformations; a document it cannot read any item from is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXParseException

import aiohttp
import feedparser  # type: ignore[import-untyped]  # ships no type information
from markupsafe import Markup

from shared.generation.errors import GenerationFailed
from shared.media import fetch as guard
from shared.metrics import GENERATION_STEP_DURATION
from shared.providers.base import Permanent, ProviderError

#: A feed is a page of recent items: a few hundred kilobytes at most in practice.
FEED_MAX_BYTES = 5 * 1024 * 1024
#: The whole fetch, connection to last byte.
FEED_SECONDS = 30.0
#: Item fields are cut to these many characters: far above any post, far below the cap.
TITLE_CHARS = 1_000
SUMMARY_CHARS = 5_000
#: Longer identities are stored as their hash, so that the index key stays small.
KEY_CHARS = 512


@dataclass(frozen=True)
class FeedItem:
    """One entry: `key` is its identity (guid, else link, else title and date), `position` its
    place in the document (0 first)."""

    key: str
    title: str
    link: str
    summary: str
    published: datetime | None
    position: int

    def variables(self) -> dict[str, Any]:
        """The template's `item`."""
        return {"title": self.title, "link": self.link, "summary": self.summary,
                "published": self.published}


@dataclass(frozen=True)
class Validators:
    """What the feed's server said identifies its last answer, sent back to ask for changes."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


@dataclass(frozen=True)
class Fetched:
    """`items` None: the feed has not changed since `validators` were given (a 304)."""

    items: list[FeedItem] | None
    validators: Validators


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _identity(kind: str, value: str) -> str:
    if len(value) > KEY_CHARS:
        value = hashlib.sha256(value.encode()).hexdigest()
        kind += "-sha256"
    return f"{kind}:{value}"


def _published(entry: Any) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    year, month, day, hour, minute, second = parsed[:6]  # feedparser gives UTC
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _item(entry: Any, position: int) -> FeedItem | None:
    """None for an entry without guid, link, title or date: nothing could recognise it again."""
    title = Markup(entry.get("title") or "").striptags()
    summary = Markup(entry.get("summary") or "").striptags()
    link = (entry.get("link") or "").strip()
    published = _published(entry)
    guid = (entry.get("id") or "").strip()
    if guid:
        key = _identity("guid", guid)
    elif link:
        key = _identity("link", link)
    elif title or published:
        stamp = published.isoformat() if published else ""
        key = _identity("hash", hashlib.sha256(f"{title}\x00{stamp}".encode()).hexdigest())
    else:
        return None
    return FeedItem(key=key, title=_cut(title, TITLE_CHARS), link=link,
                    summary=_cut(summary, SUMMARY_CHARS), published=published,
                    position=position)


@asynccontextmanager
async def _timed(step: str) -> AsyncIterator[None]:
    with GENERATION_STEP_DURATION.labels(step=step).time():
        yield


def parse(document: bytes, content_type: str | None = None) -> list[FeedItem]:
    """The feed's items in document order. GenerationFailed when `document` is not a feed or
    too broken to give any item (permanent), or cut short (transient). Malformed feeds that
    still give items (an undefined entity, a stray `&`) are read as feedparser reads them. A
    feed repeating an identity keeps its first."""
    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(document, response_headers=headers)
    problem = parsed.get("bozo_exception") if parsed.bozo else None
    if isinstance(problem, SAXParseException) and problem.getMessage() == "no element found":
        # Cut short: its last item may be cut too, and the whole one may come next time.
        raise GenerationFailed("the feed ends before its end", permanent=False)
    items: list[FeedItem] = []
    keys: set[str] = set()
    for position, entry in enumerate(parsed.entries):
        item = _item(entry, position)
        if item is not None and item.key not in keys:
            keys.add(item.key)
            items.append(item)
    if not items and not parsed.version:
        raise GenerationFailed("the document is not an RSS or Atom feed", permanent=True)
    if not items and problem is not None:
        raise GenerationFailed(f"the feed could not be read: {problem}", permanent=True)
    return items


def oldest_first(items: Sequence[FeedItem]) -> list[FeedItem]:
    """Publication order. When every item has a date, by date (a feed may list them in any
    order); otherwise by the document, last first, since feeds list their newest first.
    Equal dates fall back to the document the same way."""
    if all(item.published is not None for item in items):
        return sorted(items, key=lambda i: (i.published, -i.position))
    return sorted(items, key=lambda i: -i.position)


async def fetch(session: aiohttp.ClientSession, url: str, *, allow_private: bool,
                validators: Validators | None = None, max_bytes: int = FEED_MAX_BYTES,
                seconds: float = FEED_SECONDS) -> Fetched:
    """The feed at `url`, asked for only if changed since `validators`. `session` is one of
    `shared.media.fetch.fetch_session`, whose resolver refuses non-public addresses. Failures
    are GenerationFailed: permanent for a refused address, a 4xx, an oversized or unreadable
    feed; transient for a 5xx, a timeout or a broken connection."""
    sent = validators or Validators()
    try:
        async with asyncio.timeout(seconds), _timed("feed"), guard.opened(
                session, url, allow_private, headers=sent.headers(), what="feed URL") as reply:
            received = Validators(reply.headers.get("ETag") or sent.etag,
                                  reply.headers.get("Last-Modified") or sent.last_modified)
            if reply.status == 304:
                return Fetched(None, received)
            if (reply.content_length or 0) > max_bytes:
                raise GenerationFailed(f"the feed is larger than {max_bytes} bytes",
                                       permanent=True)
            chunks: list[bytes] = []
            size = 0
            async for chunk in guard.body(reply):
                size += len(chunk)
                if size > max_bytes:
                    raise GenerationFailed(f"the feed is larger than {max_bytes} bytes",
                                           permanent=True)
                chunks.append(chunk)
            content_type = reply.headers.get("Content-Type")
    except TimeoutError:
        raise GenerationFailed(f"the feed did not arrive within {seconds:g} s",
                               permanent=False) from None
    except ProviderError as exc:
        raise GenerationFailed(str(exc), permanent=isinstance(exc, Permanent)) from None
    items = await asyncio.to_thread(parse, b"".join(chunks), content_type)
    return Fetched(items, received)
