"""The media store: one interface over where the bytes live (GridFS or an S3-compatible object
store), with the record of each item (type, size, SHA-256, dimensions, duration) in MongoDB's
`media` collection whichever backend holds the bytes.

Bytes go in as a stream: the type is told from the first bytes before anything is written,
the size limit is enforced while they flow, and the dimensions and duration are read back from
the store afterwards through a seekable view, so no item is ever held whole in memory. The
record is written last: an item without one does not exist for the API, the posts or a
publish.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import io
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

import aiohttp
from pymongo.asynchronous.collection import AsyncCollection

from shared.config import Settings
from shared.media import fetch
from shared.media.kinds import HEAD_BYTES, UnsupportedMedia, probe, sniff
from shared.media.signing import PUBLIC_URL_SECONDS, UrlSigner
from shared.models import UNFINISHED_STATES, Content, Media, new_id
from shared.providers.base import (
    MediaFile,
    MediaInfo,
    PartsInfo,
    PartsMedia,
    Permanent,
    Problems,
    Transient,
)
from shared.store import Doc, Store

#: How much one read of the stored bytes asks for when a probe reads them back.
PROBE_BUFFER = 1024 * 1024
#: How long a probe's single read of the store may take before the upload fails.
PROBE_READ_SECONDS = 60.0
#: Media fetched from a URL is stored for the publish that fetched it (its retries fetch it
#: again); it is removed once it is this old, past the life of any public URL given for it.
FETCHED_KEPT = timedelta(days=1)
#: At most this many expired fetched items are removed per resolve, so a backlog of them
#: never holds one publish up for long.
PURGE_BATCH = 20


class MediaTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes (HERALD_MEDIA_MAX_BYTES)")
        self.limit = limit


class MediaUnavailable(Transient):
    """The object store could not be reached or failed: a publish retries later, the API
    answers 503."""


class MediaInUse(Exception):
    """An unfinished job publishes content that names the item."""


class _Intake:
    """A byte stream on its way into the store: its head (for the type), its size against the
    limit, and its SHA-256, all taken as it flows."""

    def __init__(self, source: AsyncIterable[bytes], limit: int) -> None:
        self._source = aiter(source)
        self._limit = limit
        self.head = b""
        self.size = 0
        self.digest = hashlib.sha256()

    async def read_head(self) -> bytes:
        while len(self.head) < HEAD_BYTES:
            chunk = await anext(self._source, None)
            if chunk is None:
                break
            self.head += chunk
            self._count(chunk)
        return self.head

    def _count(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            raise MediaTooLarge(self._limit)
        self.digest.update(chunk)

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        async for chunk in self._source:
            if chunk:
                self._count(chunk)
                yield chunk


class _StoredView(io.RawIOBase):
    """A stored item as a blocking, seekable file for the probes, which run in a thread: each
    read is a range read of the store, run on the event loop."""

    def __init__(self, store: MediaStore, media_id: str, size: int,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._store, self._id, self._size, self._loop = store, media_id, size, loop
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        end = min(self._size, self._pos + len(buffer))
        if end <= self._pos:
            return 0
        data = asyncio.run_coroutine_threadsafe(
            self._store.read_bytes(self._id, self._pos, end), self._loop,
        ).result(PROBE_READ_SECONDS)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


class StoredMedia:
    """A stored item as a provider publishes it (`shared.providers.base.MediaFile`)."""

    def __init__(self, store: MediaStore, record: Doc, alt: str,
                 presigned_url: str | None = None) -> None:
        self._store = store
        self._record = record
        self._alt = alt
        self._presigned_url = presigned_url

    @property
    def id(self) -> str:
        media_id: str = self._record["_id"]
        return media_id

    @property
    def alt(self) -> str:
        return self._alt

    @property
    def sha256(self) -> str:
        digest: str = self._record["sha256"]
        return digest

    @property
    def info(self) -> MediaInfo:
        return media_info(self._record)

    async def chunks(self, chunk_size: int, start: int = 0,
                     end: int | None = None) -> AsyncIterator[bytes]:
        """Exactly `chunk_size` bytes each but the last, whatever size the backend reads in:
        platforms with chunk rules (TikTok, YouTube's 256 KiB multiples) rely on it."""
        stop = self._record["size"] if end is None else min(end, self._record["size"])
        pending = bytearray()
        async for piece in self._store.read(self.id, start, stop):
            pending += piece
            while len(pending) >= chunk_size:
                yield bytes(pending[:chunk_size])
                del pending[:chunk_size]
        if pending:
            yield bytes(pending)

    def public_url(self) -> str:
        if self._presigned_url is not None:
            return self._presigned_url
        return self._store.signed_url(self.id)


def media_info(record: Doc) -> MediaInfo:
    return MediaInfo(record["content_type"], record["size"], record.get("width"),
                     record.get("height"), record.get("duration_seconds"))


def _parts(content: Content) -> list[tuple[str, list[Media]]]:
    """(field prefix, media) of the post and of each thread part, in `PartsInfo` order."""
    return [("content.media", content.media)] + [
        (f"content.thread.{n}.media", part.media) for n, part in enumerate(content.thread)]


def uses_media(media_id: str) -> Doc:
    """A filter for content (a post's, or a job's override) that names `media_id`."""
    return {"$or": [{"content.media.id": media_id}, {"content.thread.media.id": media_id}]}


class MediaStore(abc.ABC):
    """Where uploaded and fetched media live; `rt.media`. Backends implement the byte
    operations; everything else (the records, the checks, resolving a post's media) is here."""

    #: Where the record says the bytes are; a record is only ever read by its own backend.
    backend: str

    def __init__(self, store: Store, settings: Settings) -> None:
        self.records: AsyncCollection[Doc] = store.db["media"]
        self._store = store
        self._settings = settings
        self._signer = UrlSigner(settings.secret_key)
        self._fetcher: aiohttp.ClientSession | None = None

    # --- the backend's part -------------------------------------------------------------------

    @abc.abstractmethod
    async def write(self, media_id: str, chunks: AsyncIterator[bytes], content_type: str) -> None:
        """Store the whole stream under `media_id`; if the stream raises, leave nothing."""

    @abc.abstractmethod
    def read(self, media_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes `start` to `end` (exclusive), in the backend's own chunk sizes."""

    @abc.abstractmethod
    async def erase(self, media_id: str) -> None:
        """Remove the bytes; removing what is not there is no error."""

    async def presign(self, media_id: str, seconds: int) -> str | None:
        """A URL the object store itself serves the bytes at, where it can."""
        return None

    @property
    def public_urls(self) -> bool:
        """Platforms can be handed URLs of this store's media: signed ones under
        HERALD_PUBLIC_BASE_URL, or the object store's presigned ones."""
        return self._settings.public_base_url is not None

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.close()

    # --- items --------------------------------------------------------------------------------

    async def save(self, source: AsyncIterable[bytes], *, alt: str = "",
                   source_url: str | None = None) -> Doc:
        """Stream `source` into the store and record it. UnsupportedMedia before a byte is
        written when the type is not accepted, or once stored when the file does not read as
        its type; MediaTooLarge as soon as the limit is passed. Nothing stays behind either way.
        """
        intake = _Intake(source, self._settings.media_max_bytes)
        content_type = sniff(await intake.read_head())
        media_id = new_id()
        await self.write(media_id, intake.chunks(), content_type)
        try:
            view = io.BufferedReader(
                _StoredView(self, media_id, intake.size, asyncio.get_running_loop()),
                PROBE_BUFFER)
            found = await asyncio.to_thread(probe, content_type, view)
            record: Doc = {
                "_id": media_id, "backend": self.backend, "content_type": content_type,
                "size": intake.size, "sha256": intake.digest.hexdigest(),
                "width": found.width, "height": found.height,
                "duration_seconds": found.duration_seconds, "alt": alt,
                "created_at": self._store.now(),
            }
            if source_url is not None:
                record["source_url"] = source_url
            await self.records.insert_one(record)
        except BaseException:
            await self.erase(media_id)
            raise
        return record

    async def get(self, media_id: str) -> Doc | None:
        return await self.records.find_one({"_id": media_id, "deleting": {"$ne": True}})

    async def read_bytes(self, media_id: str, start: int, end: int) -> bytes:
        return b"".join([piece async for piece in self.read(media_id, start, end)])

    async def delete(self, media_id: str) -> bool:
        """False when there is no such item; MediaInUse while an unfinished job's content names
        it. The record is marked first, so a post checked meanwhile no longer finds the item."""
        record = await self.records.find_one_and_update(
            {"_id": media_id, "deleting": {"$ne": True}}, {"$set": {"deleting": True}})
        if record is None:
            return False
        if await self._in_use(media_id):
            await self.records.update_one({"_id": media_id}, {"$unset": {"deleting": ""}})
            raise MediaInUse(f"media {media_id} is used by a post with unfinished jobs")
        await self.erase(media_id)
        await self.records.delete_one({"_id": media_id})
        return True

    async def _in_use(self, media_id: str) -> bool:
        unfinished = {"$in": [str(s) for s in UNFINISHED_STATES]}
        posts = [p["_id"] for p in await self._store.posts.find(
            uses_media(media_id), {"_id": 1}).to_list()]
        query: Doc = {"state": unfinished, "$or": [
            {"post_id": {"$in": posts}},
            {"content_override.media.id": media_id},
            {"content_override.thread.media.id": media_id},
        ]}
        return await self._store.jobs.find_one(query, {"_id": 1}) is not None

    # --- posts' media -------------------------------------------------------------------------

    async def known(self, contents: Iterable[Content]) -> dict[str, Doc]:
        """The records of every item the contents name, by id, in one query (a batch of
        posts is described from one read)."""
        return await self._records(
            m.id for content in contents for _, media in _parts(content) for m in media)

    async def describe(self, content: Content, known: dict[str, Doc] | None = None
                       ) -> tuple[PartsInfo, Problems]:
        """What is known of each part's media for the limits checked at scheduling, and a
        problem naming each `id` that names no stored item. Media by URL is known by its
        declared `mime_type` only, until Herald fetches it at publish time. `known` is what
        `known` already read."""
        records = await self.known([content]) if known is None else known
        infos: list[list[MediaInfo]] = []
        problems: Problems = []
        for prefix, media in _parts(content):
            part: list[MediaInfo] = []
            for i, item in enumerate(media):
                if item.id is None:
                    part.append(MediaInfo(item.mime_type))
                elif item.id in records:
                    part.append(media_info(records[item.id]))
                else:
                    problems.append((f"{prefix}.{i}.id", f"no media with id {item.id!r}"))
            infos.append(part)
        return infos, problems

    async def resolve(self, content: Content) -> PartsMedia:
        """Each part's media as providers publish it: stored items streamed from the store, and
        media by URL fetched now into the store (so it has a size, a digest, a type from its
        bytes, ranges and a public URL like any other). Permanent when a stored item is gone
        or a URL's file is refused; Transient when a URL could not be fetched this time."""
        records = await self._records(m.id for _, media in _parts(content) for m in media)
        if any(m.url is not None for _, media in _parts(content) for m in media):
            await self._purge_fetched()
        parts: list[list[MediaFile]] = []
        for _, media in _parts(content):
            part: list[MediaFile] = []
            for item in media:
                record = records.get(item.id) if item.id else await self._fetched(str(item.url))
                if record is None:
                    raise Permanent(f"media {item.id} was deleted")
                presigned = await self.presign(record["_id"], PUBLIC_URL_SECONDS)
                part.append(StoredMedia(self, record, item.alt or record.get("alt", ""),
                                        presigned))
            parts.append(part)
        return parts

    async def _records(self, ids: Iterable[str | None]) -> dict[str, Doc]:
        wanted = sorted({i for i in ids if i is not None})
        if not wanted:
            return {}
        found = await self.records.find({"_id": {"$in": wanted},
                                         "deleting": {"$ne": True}}).to_list()
        return {r["_id"]: r for r in found}

    async def _fetched(self, url: str) -> Doc:
        if self._fetcher is None:
            self._fetcher = fetch.fetch_session(self._settings.allow_private_urls)
        async with fetch.opened(self._fetcher, url, self._settings.allow_private_urls) as reply:
            try:
                return await self.save(fetch.body(reply), source_url=url)
            except (UnsupportedMedia, MediaTooLarge) as exc:
                raise Permanent(f"media URL on {reply.url.host}: {exc}") from None

    async def _purge_fetched(self) -> None:
        cutoff = self._store.now() - FETCHED_KEPT
        expired = await self.records.find(
            {"source_url": {"$exists": True}, "created_at": {"$lt": cutoff}},
            {"_id": 1}).limit(PURGE_BATCH).to_list()
        for record in expired:
            await self.erase(record["_id"])
            await self.records.delete_one({"_id": record["_id"]})

    # --- public URLs --------------------------------------------------------------------------

    def signed_url(self, media_id: str, seconds: int = PUBLIC_URL_SECONDS) -> str:
        """A signed, expiring URL under HERALD_PUBLIC_BASE_URL; Permanent when it is unset,
        since a platform that fetches media itself cannot be given any."""
        base = self._settings.public_base_url
        if base is None:
            raise Permanent("this platform fetches media from a public URL, and "
                            "HERALD_PUBLIC_BASE_URL is not set")
        return self._signer.url(base, media_id, int(time.time()) + seconds)

    def url_valid(self, media_id: str, expires: int, signature: str) -> bool:
        return self._signer.valid(media_id, expires, signature, time.time())

