"""A stored item's bytes over HTTP, for the API's `GET /media/{id}/content` and the signed
public URL alike: streamed from the store, with single-range `Range` requests (RFC 9110 §14),
which platforms fetching a video use to resume."""

from __future__ import annotations

import re

from aiohttp import web

from shared.http import error_body
from shared.media.store import MediaStore
from shared.store import Doc

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(Exception):
    """The range starts past the end (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a `Range` header asks for, or None to send the whole item: no header,
    another unit, several ranges or a malformed one are all answered whole, as RFC 9110 lets
    a server do. Unsatisfiable when the range lies past the end."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, min(end, size)


async def send(request: web.Request, media: MediaStore, record: Doc) -> web.StreamResponse:
    size: int = record["size"]
    try:
        span = byte_range(request.headers.get("Range"), size)
    except Unsatisfiable:
        refused = error_body(416, "range_not_satisfiable",
                             f"the range lies outside the item's {size} bytes")
        refused.headers["Content-Range"] = f"bytes */{size}"
        return refused
    start, end = span or (0, size)
    response = web.StreamResponse(status=206 if span else 200, headers={
        "Content-Type": record["content_type"], "Accept-Ranges": "bytes",
        "ETag": f'"{record["sha256"]}"', "X-Content-Type-Options": "nosniff",
    })
    response.content_length = end - start
    if span:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in media.read(record["_id"], start, end):
            await response.write(chunk)
    await response.write_eof()
    return response
