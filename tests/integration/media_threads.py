"""Requests with media and threads for the provider tests, and checkpoints that script a fault
at the moment a step is saved (a failure on part two, a failure after an upload)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from shared.models import Content, Media, ThreadItem
from shared.providers.base import MemoryCheckpoints, PublishRequest
from tests.integration.platform_support import publish_request
from tests.media_support import BytesMedia

#: Bytes whose every value occurs, CR LF pairs and multipart-looking lines included.
_AWKWARD = b"\r\n--boundary\r\n\x00\xff" * 64


def image(name: str = "img", size: int = 200_000, alt: str = "",
          content_type: str = "image/png", width: int = 1200, height: int = 800) -> BytesMedia:
    data = (b"\x89PNG\r\n\x1a\n" + _AWKWARD + os.urandom(size))[:size]
    return BytesMedia(name, data, content_type, alt=alt, width=width, height=height)


def video(name: str = "vid", size: int = 3_000_000, duration: float = 12.0,
          content_type: str = "video/mp4") -> BytesMedia:
    data = (b"\x00\x00\x00\x18ftypmp42" + _AWKWARD + os.urandom(size))[:size]
    return BytesMedia(name, data, content_type, width=1280, height=720,
                      duration_seconds=duration)


def media_request(account: dict[str, Any], text: str = "Hello from Herald",
                  media: Sequence[BytesMedia] = (),
                  thread: Sequence[tuple[str, Sequence[BytesMedia]]] = (),
                  checkpoints: MemoryCheckpoints | None = None, **config: Any) -> PublishRequest:
    """`publish_request` with media on the post and a thread of (text, media) replies; each
    media item appears in `content` by a placeholder URL, as the store's do."""
    def listed(files: Sequence[BytesMedia]) -> list[Media]:
        return [Media.model_validate({"url": f"https://media.example/{f.id}", "alt": f.alt,
                                      "mime_type": f.content_type}) for f in files]
    base = publish_request(account, text or "-", **config)
    content = Content(text=text, media=listed(media),
                      thread=[ThreadItem(text=t, media=listed(m)) for t, m in thread])
    return dataclasses.replace(
        base, content=content, media=[list(media), *[list(m) for _t, m in thread]],
        checkpoints=checkpoints if checkpoints is not None else MemoryCheckpoints())


class Scripted(MemoryCheckpoints):
    """Checkpoints that call `when(key, value)` after each save: a test scripts the platform's
    next fault at the moment a step is recorded."""

    def __init__(self, when: Callable[[str, Any], None]) -> None:
        super().__init__()
        self.when = when
        self.saved: list[str] = []

    async def save(self, key: str, value: Any) -> None:
        await super().save(key, value)
        self.saved.append(key)
        self.when(key, value)
