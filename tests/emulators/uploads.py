"""What the emulators share about uploads: a `multipart/form-data` body read as the platforms
read one (each part's name, file name, content type and bytes), the record each emulator keeps
of a received file (its SHA-256, so a test compares the bytes intact), and processing that
takes a while (a number of status polls before the file is ready).

`PlatformEmulator.guard` reads the whole body before the platform acts, which leaves aiohttp's
own multipart reader nothing to read; `form_parts` parses the body `guard` kept.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_DISPOSITION_PARAM = re.compile(r';\s*([A-Za-z*]+)="((?:[^"\\]|\\.)*)"|;\s*([A-Za-z*]+)=([^;\s]+)')


@dataclass(frozen=True)
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


async def form_parts(request: web.Request) -> list[FormPart] | None:
    """The parts of a `multipart/form-data` body, in order; None when the body is not one (no
    boundary, or a part without a `Content-Disposition: form-data; name=`)."""
    if request.content_type != "multipart/form-data":
        return None
    found = re.search(r'boundary="?([^";]+)"?', request.headers.get("Content-Type", ""))
    if found is None:
        return None
    body = await request.read()
    delimiter = b"--" + found.group(1).encode("latin-1")
    chunks = body.split(b"\r\n" + delimiter)
    first = chunks[0]
    if not first.startswith(delimiter):
        return None
    chunks[0] = first[len(delimiter):]
    parts: list[FormPart] = []
    for chunk in chunks:
        if chunk.startswith(b"--"):
            return parts
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            return None
        headers = {}
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        if not disposition.lower().startswith("form-data"):
            return None
        params = {(m[0] or m[2]).lower(): m[1] or m[3]
                  for m in _DISPOSITION_PARAM.findall(disposition)}
        if "name" not in params:
            return None
        parts.append(FormPart(params["name"], data, params.get("filename"),
                              headers.get("content-type")))
    return None  # no closing delimiter: the body was cut short


def form_fields(parts: list[FormPart]) -> dict[str, list[FormPart]]:
    """The parts by name (a name may repeat, as `media_ids[]`)."""
    named: dict[str, list[FormPart]] = {}
    for part in parts:
        named.setdefault(part.name, []).append(part)
    return named


@dataclass
class Received:
    """One file a platform received: who sent it, its bytes' digest and size, and how many
    status polls remain before its processing is done."""

    id: str
    owner: str
    content_type: str
    size: int
    sha256: str
    polls_left: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.polls_left <= 0

    def polled(self) -> None:
        self.polls_left -= 1

    def state(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "content_type": self.content_type,
                "size": self.size, "sha256": self.sha256, "ready": self.ready, **self.details}


def received(media_id: str, owner: str, content_type: str, data: bytes, polls: int = 0,
             **details: Any) -> Received:
    return Received(media_id, owner, content_type, len(data), hashlib.sha256(data).hexdigest(),
                    polls, dict(details))
