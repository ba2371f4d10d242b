"""The items each post has taken, in MongoDB: the items present at creation are never
published, each new item goes to exactly one occurrence (whoever races), oldest first, and a
retry or another account's job of the same occurrence gets the same item."""

# The fixtures imported from generation_support are redefined as parameters, as pytest wants.
# ruff: noqa: F811

from __future__ import annotations

import asyncio

from shared.generation.feed_items import Claim, FeedItems
from shared.generation.feeds import FeedItem, Validators, parse
from tests.integration.generation_support import Entry, at, feed_items, rss  # noqa: F401

POST = "post-1"
URL = "https://example.org/feed.xml"
OLD = [Entry("Old B", guid="b", published=at(2)), Entry("Old A", guid="a", published=at(1))]


def items(*entries: Entry) -> list[FeedItem]:
    return parse(rss(entries))


def fresh(n: int) -> list[Entry]:
    """`n` new entries, newest first as a feed lists them."""
    return [Entry(f"New {i}", guid=f"n{i}", published=at(10 + i)) for i in range(n, 0, -1)]


async def test_items_present_at_creation_are_never_claimed(feed_items: FeedItems) -> None:
    await feed_items.seed(POST, URL, items(*OLD))
    assert await feed_items.seeded(POST)
    assert await feed_items.claim_next(POST, "occ-1", items(*OLD)) is None
    assert await feed_items.items.count_documents({"seeded": False}) == 0


async def test_each_new_item_goes_to_one_occurrence_oldest_first(
        feed_items: FeedItems) -> None:
    await feed_items.seed(POST, URL, items(*OLD))
    feed = items(*fresh(2), *OLD)
    first = await feed_items.claim_next(POST, "occ-1", feed)
    second = await feed_items.claim_next(POST, "occ-2", feed)
    third = await feed_items.claim_next(POST, "occ-3", feed)
    assert first is not None and second is not None
    assert (first.item.title, first.remaining) == ("New 1", 1)
    assert (second.item.title, second.remaining) == ("New 2", 0)
    assert third is None


async def test_a_retry_gets_the_same_item_whatever_the_feed_says_now(
        feed_items: FeedItems) -> None:
    await feed_items.seed(POST, URL, items(*OLD))
    claim = await feed_items.claim_next(POST, "occ-1", items(*fresh(1), *OLD))
    assert claim is not None
    again = await feed_items.claim_next(POST, "occ-1", items(*fresh(3), *OLD))
    after_304 = await feed_items.claim_next(POST, "occ-1", [])
    assert again is not None and after_304 is not None
    assert again.item == claim.item == after_304.item
    assert again.remaining == 2, "New 2 and New 3 wait for later occurrences"
    assert claim.item.published == at(11)


async def test_racing_occurrences_never_share_an_item(feed_items: FeedItems) -> None:
    await feed_items.seed(POST, URL, items(*OLD))
    feed = items(*fresh(3), *OLD)
    claims = await asyncio.gather(*(feed_items.claim_next(POST, f"occ-{n}", feed)
                                    for n in range(10)))
    taken = [c.item.key for c in claims if c is not None]
    assert sorted(taken) == ["guid:n1", "guid:n2", "guid:n3"]
    assert claims.count(None) == 7


async def test_twins_of_one_occurrence_share_its_item(feed_items: FeedItems) -> None:
    """Every account's job of an occurrence, generating at once, publishes the same item."""
    await feed_items.seed(POST, URL, items(*OLD))
    feed = items(*fresh(3), *OLD)
    claims = await asyncio.gather(*(feed_items.claim_next(POST, "occ-1", feed)
                                    for _ in range(6)))
    assert all(isinstance(c, Claim) for c in claims)
    assert {c.item.key for c in claims if c is not None} == {"guid:n1"}
    assert await feed_items.items.count_documents({"claimed_by": "occ-1"}) == 1


async def test_posts_are_independent(feed_items: FeedItems) -> None:
    await feed_items.seed(POST, URL, items(*OLD))
    await feed_items.seed("post-2", URL, [])
    claim = await feed_items.claim_next("post-2", "occ-1", items(*OLD))
    assert claim is not None and claim.item.title == "Old A"
    assert await feed_items.claim_next(POST, "occ-1", items(*OLD)) is None


async def test_seeding_again_keeps_what_was_claimed(feed_items: FeedItems) -> None:
    await feed_items.seed(POST, URL, items(*OLD))
    claim = await feed_items.claim_next(POST, "occ-1", items(*fresh(1), *OLD))
    await feed_items.seed(POST, URL, items(*fresh(2), *OLD))
    again = await feed_items.claim_next(POST, "occ-1", [])
    assert claim is not None and again is not None and again.item == claim.item
    assert await feed_items.claim_next(POST, "occ-2", items(*fresh(2), *OLD)) is None


async def test_validators_are_kept_per_post_and_url(feed_items: FeedItems) -> None:
    await feed_items.seed(POST, URL, [])
    assert (await feed_items.validators(POST, URL)).headers() == {}
    await feed_items.remember(POST, URL, Validators('"v1"', "Mon, 05 Jan 2026 00:00:00 GMT"))
    assert await feed_items.validators(POST, URL) == Validators(
        '"v1"', "Mon, 05 Jan 2026 00:00:00 GMT")
    assert await feed_items.validators(POST, "https://example.org/other.xml") == Validators()
    await feed_items.forget(POST)
    assert not await feed_items.seeded(POST)
    assert await feed_items.items.count_documents({"post_id": POST}) == 0
