"""A post's feed as the source of its occurrences: what the generation lane calls, so that the
order of fetch, claim and validators lives in one place.

The feed's validators are kept only when the fetch they came with leaves no unseen item: a
feed that gained three items at once answers 304 to the next two occurrences otherwise, and
they would be skipped while items wait. A post whose feed was never seeded (its creation did
not reach the feed) is seeded by its first occurrence, which is then skipped: items present
before Herald first saw the feed are never published.
"""

from __future__ import annotations

import aiohttp

from shared.generation.feed_items import FeedItems
from shared.generation.feeds import FeedItem, fetch


async def seed(items: FeedItems, session: aiohttp.ClientSession, post_id: str, url: str, *,
               allow_private: bool) -> int:
    """Count everything the feed holds now as seen (at post creation); the number of items.
    GenerationFailed when the feed cannot be fetched or read: the post can then be refused."""
    fetched = await fetch(session, url, allow_private=allow_private)
    found = fetched.items or []
    await items.seed(post_id, url, found, fetched.validators)
    return len(found)


async def next_item(items: FeedItems, session: aiohttp.ClientSession, post_id: str, url: str,
                    occurrence: str, *, allow_private: bool) -> FeedItem | None:
    """The item `occurrence` publishes (the same on every call for it), or None when the
    feed has nothing new (the occurrence is skipped). GenerationFailed as `feeds.fetch`."""
    taken = await items.claimed(post_id, occurrence)
    if taken is not None:  # a retry, or another account's job: no need of the feed
        return taken
    if not await items.seeded(post_id):
        await seed(items, session, post_id, url, allow_private=allow_private)
        return None
    fetched = await fetch(session, url, allow_private=allow_private,
                          validators=await items.validators(post_id, url))
    claim = await items.claim_next(post_id, occurrence, fetched.items or [])
    if claim is None or claim.remaining == 0:
        await items.remember(post_id, url, fetched.validators)
    return None if claim is None else claim.item
