"""Feeds read and fetched: RSS and Atom, malformed documents, items without dates or out of date
order, conditional requests, and the bounds (size, time, addresses) of the fetch."""

# The fixtures imported from generation_support are redefined as parameters, as pytest wants.
# ruff: noqa: F811

from __future__ import annotations

import aiohttp
import pytest

from shared.generation.errors import GenerationFailed
from shared.generation.feeds import (
    FeedItem,
    Validators,
    fetch,
    oldest_first,
    parse,
)
from shared.media.fetch import fetch_session
from shared.metrics import REGISTRY
from tests.integration.generation_support import (  # noqa: F401
    ATOM_TYPE,
    Entry,
    FeedServer,
    Served,
    at,
    atom,
    feeds,
    fetcher,
    rss,
)

THREE = [Entry("Third", "https://example.org/3", "g3", at(3), "<p>Three &amp; <b>more</b></p>"),
         Entry("Second", "https://example.org/2", "g2", at(2)),
         Entry("First", "https://example.org/1", "g1", at(1))]


def titles(items: list[FeedItem]) -> list[str]:
    return [item.title for item in items]


@pytest.mark.parametrize("render", [rss, atom])
def test_rss_and_atom_items_read_alike(render: object) -> None:
    items = parse(render(THREE))  # type: ignore[operator]
    assert titles(items) == ["Third", "Second", "First"]
    third = items[0]
    assert third.key == "guid:g3"
    assert third.link == "https://example.org/3"
    assert third.published == at(3)
    assert third.summary == "Three & more"
    assert third.variables() == {"title": "Third", "link": "https://example.org/3",
                                 "summary": "Three & more", "published": at(3)}
    assert titles(oldest_first(items)) == ["First", "Second", "Third"]


def test_identity_is_guid_else_link_else_title_and_date() -> None:
    items = parse(rss([Entry("A", "https://example.org/a", "id-a"),
                       Entry("B", "https://example.org/b"),
                       Entry("C", published=at(5)),
                       Entry("C", published=at(6)),
                       Entry(None, None, None, None, "only a summary")]))
    keys = [item.key for item in items]
    assert keys[0] == "guid:id-a"
    assert keys[1] == "link:https://example.org/b"
    assert keys[2].startswith("hash:") and keys[3].startswith("hash:")
    assert keys[2] != keys[3], "same title, another date: another item"
    assert len(items) == 4, "an entry nothing could recognise again is left out"
    again = parse(rss([Entry("C", published=at(5))]))
    assert again[0].key == keys[2], "the identity is stable across fetches"


def test_a_repeated_identity_keeps_the_first_entry() -> None:
    items = parse(rss([Entry("New", guid="same"), Entry("Old", guid="same")]))
    assert titles(items) == ["New"]


def test_out_of_date_order_is_put_in_date_order() -> None:
    shuffled = [THREE[1], THREE[2], THREE[0]]
    assert titles(oldest_first(parse(rss(shuffled)))) == ["First", "Second", "Third"]


def test_items_without_dates_follow_the_document_newest_first() -> None:
    undated = [Entry("C", guid="c"), Entry("B", guid="b"), Entry("A", guid="a")]
    assert titles(oldest_first(parse(rss(undated)))) == ["A", "B", "C"]
    mixed = [Entry("C", guid="c", published=at(1)), Entry("B", guid="b"),
             Entry("A", guid="a", published=at(9))]
    assert titles(oldest_first(parse(rss(mixed)))) == ["A", "B", "C"], (
        "one undated item: the document decides for all")


def test_a_malformed_feed_with_readable_items_gives_them() -> None:
    broken = rss(THREE).replace(b"</channel></rss>", b"<item><title>x &nbsp; y</title>")
    assert "First" in titles(parse(broken))


def test_a_feed_too_broken_to_read_fails_for_good() -> None:
    with pytest.raises(GenerationFailed, match="could not be read") as raised:
        parse(b"<rss version='2.0'><channel><title>x</title><<<>>></channel></rss>")
    with pytest.raises(GenerationFailed, match="not an RSS or Atom feed"):
        parse(b"\x00\x01 not xml <<<")
    assert raised.value.permanent


def test_a_feed_cut_short_fails_for_now() -> None:
    """Its last item may be cut too: nothing of it is taken until it comes whole."""
    with pytest.raises(GenerationFailed, match="ends before its end") as raised:
        parse(rss(THREE)[:-40])
    assert not raised.value.permanent


def test_a_document_that_is_no_feed_fails_for_good() -> None:
    with pytest.raises(GenerationFailed, match="not an RSS or Atom feed") as raised:
        parse(b"<html><body><p>Hello</p></body></html>", "text/html")
    assert raised.value.permanent


def test_an_empty_feed_has_no_items() -> None:
    assert parse(rss([])) == []


def test_long_fields_are_cut() -> None:
    item = parse(rss([Entry("t" * 5000, guid="long", summary="s" * 50_000)]))[0]
    assert len(item.title) == 1000 and item.title.endswith("…")
    assert len(item.summary) == 5000


async def test_a_fetch_sends_its_validators_back_and_a_304_has_no_items(
        feeds: FeedServer, fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["blog"] = Served(rss(THREE), last_modified="Sat, 03 Jan 2026 12:00:00 GMT")
    first = await fetch(fetcher, feeds.url("blog"), allow_private=True)
    assert first.items is not None and titles(first.items) == ["Third", "Second", "First"]
    assert first.validators.etag and first.validators.last_modified
    assert "If-None-Match" not in feeds.requests[0]["headers"]

    fetches = REGISTRY.get_sample_value("herald_generation_step_seconds_count", {"step": "feed"})
    second = await fetch(fetcher, feeds.url("blog"), allow_private=True,
                         validators=first.validators)
    assert second.items is None
    assert REGISTRY.get_sample_value("herald_generation_step_seconds_count",
                                     {"step": "feed"}) == (fetches or 0) + 1
    assert second.validators == first.validators
    sent = feeds.requests[1]["headers"]
    assert sent["If-None-Match"] == first.validators.etag
    assert sent["If-Modified-Since"] == "Sat, 03 Jan 2026 12:00:00 GMT"

    feeds.feeds["blog"] = Served(rss([Entry("Fourth", guid="g4", published=at(4)), *THREE]))
    third = await fetch(fetcher, feeds.url("blog"), allow_private=True,
                        validators=first.validators)
    assert third.items is not None and titles(third.items)[0] == "Fourth"
    assert third.validators.etag != first.validators.etag


async def test_last_modified_alone_makes_the_request_conditional(
        feeds: FeedServer, fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["old"] = Served(atom(THREE), content_type=ATOM_TYPE, etag=False,
                                last_modified="Fri, 02 Jan 2026 08:00:00 GMT")
    first = await fetch(fetcher, feeds.url("old"), allow_private=True)
    assert first.validators == Validators(None, "Fri, 02 Jan 2026 08:00:00 GMT")
    second = await fetch(fetcher, feeds.url("old"), allow_private=True,
                         validators=first.validators)
    assert second.items is None


async def test_a_feed_over_the_size_cap_fails_for_good(
        feeds: FeedServer, fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["big"] = Served(rss([Entry(f"Item {i}", guid=str(i), summary="x" * 1000)
                                     for i in range(200)]))
    with pytest.raises(GenerationFailed, match="larger than 50000 bytes") as raised:
        await fetch(fetcher, feeds.url("big"), allow_private=True, max_bytes=50_000)
    assert raised.value.permanent


async def test_a_slow_feed_fails_for_now(feeds: FeedServer,
                                         fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["slow"] = Served(rss(THREE), delay=5.0)
    with pytest.raises(GenerationFailed, match="did not arrive") as raised:
        await fetch(fetcher, feeds.url("slow"), allow_private=True, seconds=0.3)
    assert not raised.value.permanent


@pytest.mark.parametrize("status, permanent", [(503, False), (429, False), (404, True),
                                               (410, True)])
async def test_an_error_status_is_classified(feeds: FeedServer, fetcher: aiohttp.ClientSession,
                                             status: int, permanent: bool) -> None:
    feeds.feeds["err"] = Served(b"no", status=status)
    with pytest.raises(GenerationFailed, match=f"feed URL on 127.0.0.1 answered {status}"
                       ) as raised:
        await fetch(fetcher, feeds.url("err"), allow_private=True)
    assert raised.value.permanent is permanent


async def test_redirects_are_followed(feeds: FeedServer,
                                      fetcher: aiohttp.ClientSession) -> None:
    feeds.feeds["moved"] = Served(b"", redirect="/blog")
    feeds.feeds["blog"] = Served(rss(THREE))
    result = await fetch(fetcher, feeds.url("moved"), allow_private=True)
    assert result.items is not None and len(result.items) == 3


async def test_loopback_feeds_are_refused_unless_private_urls_are_allowed(
        feeds: FeedServer) -> None:
    feeds.feeds["blog"] = Served(rss(THREE))
    async with fetch_session(allow_private=False) as guarded:
        with pytest.raises(GenerationFailed, match=r"feed URL host 127\.0\.0\.1 is not a public"
                           ) as raised:
            await fetch(guarded, feeds.url("blog"), allow_private=False)
        assert raised.value.permanent
        by_name = feeds.url("blog").replace("127.0.0.1", "localhost")
        with pytest.raises(GenerationFailed, match="non-public address"):
            await fetch(guarded, by_name, allow_private=False)
    assert feeds.requests == [], "nothing was sent to a refused address"


async def test_a_non_http_url_is_refused(fetcher: aiohttp.ClientSession) -> None:
    with pytest.raises(GenerationFailed, match="not an http") as raised:
        await fetch(fetcher, "file:///etc/passwd", allow_private=True)
    assert raised.value.permanent
