"""The feed items each post has seen, in the `feed_items` collection, and what its feed's server
last said (`feeds`, one document per post).

An item is taken by inserting its document: the unique index (post_id, item_key) lets one
occurrence have it, whoever races, and the document records the claim in that same write. A
second unique index, (post_id, claimed_by), gives an occurrence one item at most, so every
account's job of the occurrence, and every retry, gets the same one. The items present when
the post is created are inserted as seen (`seed`), never published; each is its own claimant
(`seen:<item key>`), which keeps the second index a plain one (the MongoDB-compatible dev
server the tests run on ignores partial indexes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.generation.feeds import FeedItem, Validators, oldest_first

Doc = dict[str, Any]
DUPLICATE_KEY = 11000
#: The claimant of the items a post was created with.
SEEN = "seen:"


@dataclass(frozen=True)
class Claim:
    """The item an occurrence publishes, and how many of the feed's unseen items are left for
    later occurrences (the feed's validators are kept only when none are: a 304 must not hide
    items already fetched but not yet taken)."""

    item: FeedItem
    remaining: int


def _item(doc: Doc) -> FeedItem:
    published = doc.get("published")
    if isinstance(published, datetime) and published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return FeedItem(key=doc["item_key"], title=doc["title"], link=doc["link"],
                    summary=doc["summary"], published=published, position=doc["position"])


class FeedItems:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.items: AsyncCollection[Doc] = db["feed_items"]
        self.feeds: AsyncCollection[Doc] = db["feeds"]

    async def ensure_indexes(self) -> None:
        await self.items.create_indexes([
            IndexModel([("post_id", ASCENDING), ("item_key", ASCENDING)], unique=True,
                       name="one_claim_per_item"),
            IndexModel([("post_id", ASCENDING), ("claimed_by", ASCENDING)], unique=True,
                       name="one_item_per_occurrence"),
        ])

    async def seed(self, post_id: str, url: str, items: Sequence[FeedItem],
                   validators: Validators | None = None) -> None:
        """Count `items` as seen (the feed's content when the post was created) and start the
        post's feed state; repeating it adds only items not seen yet."""
        now = datetime.now(UTC)
        if items:
            try:
                await self.items.insert_many(
                    [{"post_id": post_id, "item_key": item.key, "claimed_by": SEEN + item.key,
                      "seeded": True, "seen_at": now} for item in items], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                    raise
        await self.remember(post_id, url, validators or Validators())

    async def seeded(self, post_id: str) -> bool:
        return await self.feeds.find_one({"_id": post_id}, {"_id": 1}) is not None

    async def validators(self, post_id: str, url: str) -> Validators:
        """What to send back with the next fetch of `url`; none after the URL changed."""
        doc = await self.feeds.find_one({"_id": post_id})
        if doc is None or doc.get("url") != url:
            return Validators()
        return Validators(doc.get("etag"), doc.get("last_modified"))

    async def remember(self, post_id: str, url: str, validators: Validators) -> None:
        await self.feeds.update_one(
            {"_id": post_id},
            {"$set": {"url": url, "etag": validators.etag,
                      "last_modified": validators.last_modified,
                      "updated_at": datetime.now(UTC)}},
            upsert=True)

    async def claim_next(self, post_id: str, occurrence: str,
                         items: Sequence[FeedItem]) -> Claim | None:
        """The oldest of `items` no occurrence of the post has seen, now claimed by
        `occurrence`; the item it claimed before, if any (a retry, another account's job of the
        same occurrence); None when there is none. `items` may be empty (a 304)."""
        if occurrence.startswith(SEEN):
            raise ValueError(f"an occurrence's name cannot start with {SEEN!r}")
        earlier = await self.claimed(post_id, occurrence)
        if earlier is not None:
            return Claim(earlier, len(await self._unseen(post_id, items)))
        unseen = await self._unseen(post_id, items)
        for index, item in enumerate(unseen):
            try:
                await self.items.insert_one({
                    "post_id": post_id, "item_key": item.key, "claimed_by": occurrence,
                    "seeded": False, "seen_at": datetime.now(UTC), "title": item.title,
                    "link": item.link, "summary": item.summary, "published": item.published,
                    "position": item.position})
            except DuplicateKeyError:
                # Another occurrence took this item, or a twin of this one took another.
                earlier = await self.claimed(post_id, occurrence)
                if earlier is not None:
                    return Claim(earlier, len(unseen) - 1)
                continue
            return Claim(item, len(unseen) - index - 1)
        return None

    async def forget(self, post_id: str) -> None:
        """Drop the post's items and feed state (the post is deleted)."""
        await self.items.delete_many({"post_id": post_id})
        await self.feeds.delete_one({"_id": post_id})

    async def claimed(self, post_id: str, occurrence: str) -> FeedItem | None:
        """The item `occurrence` took, if it took one."""
        doc = await self.items.find_one({"post_id": post_id, "claimed_by": occurrence})
        return None if doc is None else _item(doc)

    async def _unseen(self, post_id: str, items: Sequence[FeedItem]) -> list[FeedItem]:
        seen = {doc["item_key"] async for doc in self.items.find(
            {"post_id": post_id, "item_key": {"$in": [item.key for item in items]}},
            {"item_key": 1})}
        unseen = [item for item in items if item.key not in seen]
        return oldest_first(unseen)
