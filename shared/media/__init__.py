"""Media storage (issue 9): uploads streamed into GridFS or an S3-compatible store, the checks
at scheduling, the files providers publish, and signed public URLs."""

from __future__ import annotations

from shared.config import Settings
from shared.media.gridfs import GridFSMediaStore
from shared.media.s3 import S3MediaStore
from shared.media.store import MediaStore
from shared.store import Store


async def open_media_store(store: Store, settings: Settings) -> MediaStore:
    """The backend HERALD_MEDIA_STORE names."""
    if settings.media_store.startswith("s3://"):
        return await S3MediaStore.open(store, settings)
    return GridFSMediaStore(store, settings)
