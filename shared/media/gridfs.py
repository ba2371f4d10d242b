"""The default media backend: GridFS in Herald's own MongoDB database (bucket `media`), so an
installation needs nothing beyond the record it already has. Platforms that fetch media
themselves get Herald's signed `/public/media/...` URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import suppress

from gridfs import AsyncGridFSBucket, NoFile
from gridfs.errors import CorruptGridFile
from pymongo import ASCENDING

from shared.config import Settings
from shared.media.store import MediaStore
from shared.store import Store

#: Chunks read per query: about 4 MiB at GridFS's default chunk size, so no reply (and no
#: buffer in the node) holds more than that, whatever the server's own batch limit.
WINDOW_CHUNKS = 16


class GridFSMediaStore(MediaStore):
    backend = "gridfs"

    def __init__(self, store: Store, settings: Settings) -> None:
        super().__init__(store, settings)
        self._bucket = AsyncGridFSBucket(store.db, bucket_name="media")
        self._files = store.db["media.files"]
        self._chunks = store.db["media.chunks"]

    async def write(self, media_id: str, chunks: AsyncIterator[bytes], content_type: str) -> None:
        upload = self._bucket.open_upload_stream_with_id(
            media_id, media_id, metadata={"content_type": content_type})
        try:
            async for chunk in chunks:
                await upload.write(chunk)
        except BaseException:
            await upload.abort()
            raise
        await upload.close()

    async def read(self, media_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The chunks under `start`..`end`, a window of them per query, read by their index
        instead of through a download stream whose one cursor a server may answer whole."""
        meta = await self._files.find_one({"_id": media_id}, {"chunkSize": 1})
        if meta is None:
            raise NoFile(f"no media file {media_id}")
        size = int(meta["chunkSize"])
        first, last = start // size, (end - 1) // size
        for window in range(first, last + 1, WINDOW_CHUNKS):
            upto = min(window + WINDOW_CHUNKS, last + 1)
            expected = window
            async for doc in self._chunks.find(
                    {"files_id": media_id, "n": {"$gte": window, "$lt": upto}},
                    sort=[("n", ASCENDING)], batch_size=WINDOW_CHUNKS):
                if doc["n"] != expected:
                    raise CorruptGridFile(f"media {media_id} lacks chunk {expected}")
                expected += 1
                offset = doc["n"] * size
                data = bytes(doc["data"])
                yield data[max(0, start - offset):min(len(data), end - offset)]
            if expected != upto:
                raise CorruptGridFile(f"media {media_id} lacks chunk {expected}")

    async def erase(self, media_id: str) -> None:
        with suppress(NoFile):
            await self._bucket.delete(media_id)
