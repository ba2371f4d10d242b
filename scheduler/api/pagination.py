"""Cursor pagination: ids are time-ordered, so `_id > after` in id order is creation order and
stays stable while documents are added."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from scheduler.api.schemas import PageQuery
from shared.store import Doc


async def page(
    collection: AsyncCollection[Doc], query: dict[str, Any], paging: PageQuery
) -> tuple[list[Doc], str | None]:
    """One page of documents and the cursor of the next page (None on the last one)."""
    if paging.after is not None:
        query = {**query, "_id": {"$gt": paging.after}}
    cursor = collection.find(query).sort("_id", 1).limit(paging.limit + 1)
    docs = await cursor.to_list()
    if len(docs) > paging.limit:
        docs = docs[: paging.limit]
        return docs, str(docs[-1]["_id"])
    return docs, None
