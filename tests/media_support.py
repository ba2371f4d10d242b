"""Media for provider tests: bytes held in memory behind the `MediaFile` interface the
executor hands providers (the store's own implementation is tested on its own)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.providers.base import MediaInfo


@dataclass(frozen=True)
class BytesMedia:
    id: str
    data: bytes
    content_type: str
    alt: str = ""
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    url: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def info(self) -> MediaInfo:
        return MediaInfo(self.content_type, len(self.data), self.width, self.height,
                         self.duration_seconds)

    async def chunks(self, chunk_size: int, start: int = 0,
                     end: int | None = None) -> AsyncIterator[bytes]:
        stop = len(self.data) if end is None else min(end, len(self.data))
        for offset in range(start, stop, chunk_size):
            yield self.data[offset:min(offset + chunk_size, stop)]

    def public_url(self) -> str:
        if not self.url:
            raise AssertionError("this test media has no public URL")
        return self.url
