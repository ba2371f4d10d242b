"""The `make run` demo's feed and posts: the feed is one Herald's own reader takes (on loopback
only with HERALD_ALLOW_PRIVATE_URLS), grows by one item per period, answers conditional
requests, and the demo's posts are ones the API accepts."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from scheduler.api.schemas import PostCreate
from shared.generation import template
from shared.generation.errors import GenerationFailed
from shared.generation.feeds import Validators, fetch, oldest_first
from shared.media.fetch import fetch_session
from tools.demo import demo_posts
from tools.demo_feed import DemoFeed

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def feed(clock: Clock) -> Iterator[DemoFeed]:
    served = DemoFeed(initial=3, every=120, clock=clock)
    served.start()
    try:
        yield served
    finally:
        served.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def test_herald_reads_the_feed_oldest_first_and_sees_each_new_item(
        feed: DemoFeed, clock: Clock) -> None:
    async with fetch_session(allow_private=True) as session:
        first = await fetch(session, feed.url, allow_private=True)
        assert first.items is not None
        assert [i.title for i in oldest_first(first.items)] == [
            "Demo news #1", "Demo news #2", "Demo news #3"]
        assert oldest_first(first.items)[0].link == feed.base_url + "/items/1"

        unchanged = await fetch(session, feed.url, allow_private=True,
                                validators=first.validators)
        assert unchanged.items is None

        clock.now += 119
        assert feed.add_due_items() == []
        clock.now += 1
        added = feed.add_due_items()
        assert [i.title for i in added] == ["Demo news #4"]
        changed = await fetch(session, feed.url, allow_private=True,
                              validators=first.validators)
        assert changed.items is not None
        assert oldest_first(changed.items)[-1].title == "Demo news #4"
        assert len({i.key for i in changed.items}) == 4


async def test_the_address_guard_refuses_the_loopback_feed_without_the_setting(
        feed: DemoFeed) -> None:
    async with fetch_session(allow_private=False) as session:
        with pytest.raises(GenerationFailed, match="not a public address"):
            await fetch(session, feed.url, allow_private=False, validators=Validators())


def test_items_have_pages_and_a_late_check_adds_every_item_missed(
        feed: DemoFeed, clock: Clock) -> None:
    status, headers, body = get(feed.base_url + "/items/2")
    assert status == 200 and b"Demo news #2" in body
    assert headers["Content-Type"].startswith("text/html")
    assert get(feed.base_url + "/items/9")[0] == 404
    assert get(feed.base_url + "/nothing")[0] == 404
    clock.now += 3 * 120
    assert [i.number for i in feed.add_due_items()] == [4, 5, 6]
    assert get(feed.base_url + "/items/6")[0] == 200


def test_the_feed_answers_304_to_its_own_etag_until_it_changes(
        feed: DemoFeed, clock: Clock) -> None:
    status, headers, _ = get(feed.url)
    assert status == 200 and headers["Content-Type"].startswith("application/rss+xml")
    etag = headers["ETag"]
    assert get(feed.url, {"If-None-Match": etag})[0] == 304
    clock.now += 120
    feed.add_due_items()
    status, headers, body = get(feed.url, {"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag and b"Demo news #4" in body


def test_the_demo_posts_are_ones_the_api_accepts() -> None:
    bodies = demo_posts("acc_demo", "http://127.0.0.1:9001/feed.xml")
    posts = [PostCreate.model_validate(body) for body in bodies]
    generated = [p for p in posts if p.content.template is not None]
    assert len(generated) == 2
    assert {p.generate_ahead_seconds for p in generated} == {60}
    assert [p.content.source is not None for p in generated] == [False, True]
    for post in generated:
        assert post.content.template is not None
        available = ("occurrence", "account", *(("item",) if post.content.source else ()))
        assert template.check(post.content.template, available=available) == []
        assert not post.content.approval_required
