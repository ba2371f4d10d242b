"""`herald rotate-keys`: re-seal every stored secret under the newest HERALD_SECRET_KEY while the
cluster runs.

Each rewrite is a compare-and-set on the exact ciphertext that was read, and changes nothing
else (not `credentials_version`: the credentials themselves are unchanged). A node that refreshed
an account's credentials in between wins; its value is already sealed with the newest key, since
nodes seal with the first one. Values no configured key opens are reported and left alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.crypto import CredentialBox
from shared.store import Doc, Store

#: Called with the collection name and the document read, just before its compare-and-set, so
#: a test can change the document in between as a concurrent node would.
BeforeWrite = Callable[[str, Doc], Awaitable[None]]


@dataclass
class Tally:
    """What rotating one collection did."""

    rotated: int = 0
    current: int = 0
    changed: int = 0
    unreadable: list[Any] = field(default_factory=list)

    def line(self, collection: str) -> str:
        return (f"{collection}: {self.rotated} rotated, {self.current} already current, "
                f"{self.changed} changed concurrently, {len(self.unreadable)} unreadable")


def sealed_fields(store: Store) -> list[tuple[AsyncCollection[Doc], str]]:
    """Every collection and field holding a value sealed by CredentialBox."""
    return [(store.accounts, "credentials_enc"), (store.oauth_apps, "client_enc"),
            (store.oauth_states, "verifier_enc")]


async def rotate_keys(store: Store, box: CredentialBox,
                      before_write: BeforeWrite | None = None) -> dict[str, Tally]:
    """Rotate every sealed value; one Tally per collection, in `sealed_fields` order."""
    return {collection.name: await _rotate_field(collection, name, box, before_write)
            for collection, name in sealed_fields(store)}


async def _rotate_field(collection: AsyncCollection[Doc], name: str, box: CredentialBox,
                        before_write: BeforeWrite | None) -> Tally:
    tally = Tally()
    # Streamed in _id order, which a rewrite never changes, so no document is met twice.
    cursor = collection.find({name: {"$type": "string"}}, {name: 1}).sort("_id", 1)
    async for doc in cursor:
        token: str = doc[name]
        if box.is_current(token):
            tally.current += 1
            continue
        try:
            fresh = box.rotate(token)
        except ValueError:
            tally.unreadable.append(doc["_id"])
            continue
        if before_write is not None:
            await before_write(collection.name, doc)
        written = await collection.update_one({"_id": doc["_id"], name: token},
                                              {"$set": {name: fresh}})
        if written.matched_count:
            tally.rotated += 1
        else:
            tally.changed += 1
    return tally
