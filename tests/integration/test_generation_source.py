"""A post's feed over its occurrences, as the generation lane will use it: nothing published
for the items present at creation, each new item once and oldest first, a 304 never hiding an
item fetched earlier, and a retry served without the feed."""

# The fixtures imported from generation_support are redefined as parameters, as pytest wants.
# ruff: noqa: F811

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from shared.generation import source
from shared.generation.errors import GenerationFailed
from shared.generation.feed_items import FeedItems
from tests.integration.generation_support import (  # noqa: F401
    Entry,
    FeedServer,
    Served,
    at,
    feed_items,
    feeds,
    fetcher,
    rss,
)

POST = "post-1"
OLD = [Entry("Old B", guid="b", published=at(2)), Entry("Old A", guid="a", published=at(1))]
NEW = [Entry("New 3", guid="n3", published=at(13)), Entry("New 2", guid="n2", published=at(12)),
       Entry("New 1", guid="n1", published=at(11))]


async def publish(items: FeedItems, session: aiohttp.ClientSession, url: str,
                  occurrence: str) -> str | None:
    item = await source.next_item(items, session, POST, url, occurrence, allow_private=True)
    return None if item is None else item.title


async def test_each_new_item_once_oldest_first_and_none_of_the_old(
        feed_items: FeedItems, feeds: FeedServer, fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["blog"] = Served(rss(OLD))
    url = feeds.url("blog")
    assert await source.seed(feed_items, fetcher, POST, url, allow_private=True) == 2
    assert await publish(feed_items, fetcher, url, "occ-1") is None
    assert feeds.requests[-1]["status"] == 304, "the seed's validators were sent back"

    feeds.feeds["blog"] = Served(rss([*NEW, *OLD]))
    titles = [await publish(feed_items, fetcher, url, f"occ-{n}") for n in range(2, 7)]
    assert titles == ["New 1", "New 2", "New 3", None, None]
    statuses = [r["status"] for r in feeds.requests[-5:]]
    assert statuses == [200, 200, 200, 304, 304], (
        "no validators while items waited; kept once the last was taken")


async def test_a_retry_and_every_accounts_job_get_the_same_item_without_the_feed(
        feed_items: FeedItems, feeds: FeedServer, fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["blog"] = Served(rss(OLD))
    url = feeds.url("blog")
    await source.seed(feed_items, fetcher, POST, url, allow_private=True)
    feeds.feeds["blog"] = Served(rss([*NEW, *OLD]))
    twins = await asyncio.gather(*(publish(feed_items, fetcher, url, "occ-1")
                                   for _ in range(3)))
    assert twins == ["New 1"] * 3
    feeds.feeds["blog"] = Served(b"down", status=503)
    asked = len(feeds.requests)
    assert await publish(feed_items, fetcher, url, "occ-1") == "New 1"
    assert len(feeds.requests) == asked
    with pytest.raises(GenerationFailed) as raised:
        await publish(feed_items, fetcher, url, "occ-2")
    assert not raised.value.permanent


async def test_a_post_never_seeded_is_seeded_by_its_first_occurrence(
        feed_items: FeedItems, feeds: FeedServer, fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["blog"] = Served(rss(OLD))
    url = feeds.url("blog")
    assert await publish(feed_items, fetcher, url, "occ-1") is None
    assert await feed_items.seeded(POST)
    assert await publish(feed_items, fetcher, url, "occ-2") is None
    feeds.feeds["blog"] = Served(rss([NEW[2], *OLD]))
    assert await publish(feed_items, fetcher, url, "occ-3") == "New 1"


async def test_a_feed_that_cannot_be_read_at_creation_fails(
        feed_items: FeedItems, feeds: FeedServer, fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["page"] = Served(b"<html><body>hi</body></html>", content_type="text/html")
    with pytest.raises(GenerationFailed, match="not an RSS or Atom feed"):
        await source.seed(feed_items, fetcher, POST, feeds.url("page"), allow_private=True)
    assert not await feed_items.seeded(POST)
