"""Media: upload, read, download and delete (API.md "Media").

An upload is read part by part from the `multipart/form-data` body and its file streamed into
the media store as it arrives, so a node holds a chunk at a time, whatever the file's size. A
refused upload (413, 415, 422) leaves nothing stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from scheduler.api.endpoint import Endpoint
from scheduler.api.errors import ApiError, bad_request, conflict, invalid, not_found
from scheduler.api.schemas import MediaOut, MediaUpload
from scheduler.api.wire import respond, runtime
from shared.media import serving
from shared.media.kinds import UnsupportedMedia
from shared.media.store import MediaInUse, MediaTooLarge, MediaUnavailable
from shared.models import ALT_MAX
from shared.store import Doc

#: The most a multipart body carries beyond its file: boundaries, part headers, the alt text.
FORM_OVERHEAD = 64 * 1024
READ_CHUNK = 256 * 1024


def media_out(record: Doc) -> MediaOut:
    return MediaOut(
        id=record["_id"], content_type=record["content_type"], size=record["size"],
        sha256=record["sha256"], width=record.get("width"), height=record.get("height"),
        duration_seconds=record.get("duration_seconds"), alt=record.get("alt", ""),
        created_at=record["created_at"])


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the file is larger than {limit} bytes", [("file", "is too large")])


#: How aiohttp says a body does not parse as multipart: a bad boundary, a bad part header.
PARSE_ERRORS = (ValueError, HttpProcessingError)


class _Malformed(Exception):
    """The body does not parse as multipart/form-data."""


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except PARSE_ERRORS:
        raise _Malformed from None
    if isinstance(part, MultipartReader):
        raise invalid([("body", "nested multipart bodies are not accepted")])
    return part


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while True:
        try:
            chunk = await part.read_chunk(READ_CHUNK)
        except PARSE_ERRORS:
            raise _Malformed from None
        if not chunk:
            return
        yield chunk


async def _alt(part: BodyPartReader) -> str:
    """The alt text, read only as far as its limit allows."""
    raw = bytearray()
    async for chunk in _chunks(part):
        raw += chunk
        if len(raw) > 4 * ALT_MAX:  # UTF-8 takes at most 4 bytes a character
            break
    try:
        text = raw.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError):
        raise invalid([("alt", "is not UTF-8 text")]) from None
    if len(text) > ALT_MAX:
        raise invalid([("alt", f"is longer than {ALT_MAX} characters")])
    return text


async def upload_media(request: web.Request) -> web.Response:
    rt = runtime(request)
    limit = rt.settings.media_max_bytes
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "the body must be multipart/form-data with a file part",
                       code="unsupported_media_type")
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD:
        raise _too_large(limit)
    alt: str | None = None
    record: Doc | None = None
    try:
        try:
            reader = await request.multipart()
        except PARSE_ERRORS:
            raise _Malformed from None
        while (part := await _next_part(reader)) is not None:
            if part.name == "alt" and alt is None:
                alt = await _alt(part)
            elif part.name == "file" and record is None:
                record = await rt.media.save(_chunks(part), alt=alt or "")
            else:
                raise invalid([(part.name or "body", "is not a known part, or is given twice")])
        if record is None:
            raise invalid([("file", "is required")])
        if alt is not None and record["alt"] != alt:
            record["alt"] = alt
            await rt.media.records.update_one({"_id": record["_id"]}, {"$set": {"alt": alt}})
    except _Malformed:
        raise bad_request("the body is not valid multipart/form-data",
                          code="invalid_multipart") from None
    except MediaTooLarge:
        raise _too_large(limit) from None
    except UnsupportedMedia as exc:
        raise ApiError(415, str(exc), [("file", str(exc))],
                       code="unsupported_media_type") from None
    except MediaUnavailable as exc:
        raise ApiError(503, str(exc), code="media_store_unavailable") from None
    except BaseException:
        if record is not None:
            await rt.media.delete(record["_id"])
        raise
    return respond(media_out(record), status=201)


async def _record(request: web.Request) -> Doc:
    media_id = request.match_info["id"]
    record = await runtime(request).media.get(media_id)
    if record is None:
        raise not_found("media", media_id)
    return record


async def get_media(request: web.Request) -> web.Response:
    return respond(media_out(await _record(request)))


async def get_media_content(request: web.Request) -> web.StreamResponse:
    """The bytes, whole or the one range asked for (206); a range past the end is a 416."""
    return await serving.send(request, runtime(request).media, await _record(request))


async def delete_media(request: web.Request) -> web.Response:
    rt = runtime(request)
    media_id = request.match_info["id"]
    try:
        deleted = await rt.media.delete(media_id)
    except MediaInUse as exc:
        raise conflict(str(exc)) from None
    if not deleted:
        raise not_found("media", media_id)
    return web.Response(status=204)


ENDPOINTS = [
    Endpoint("POST", "/media", upload_media, "Upload a file (streamed into the media store)",
             MediaOut, status=201, body=MediaUpload, body_media_type="multipart/form-data",
             errors=(413, 415, 422)),
    Endpoint("GET", "/media/{id}", get_media, "One media item's metadata", MediaOut,
             errors=(404,)),
    Endpoint("GET", "/media/{id}/content", get_media_content,
             "The media item's bytes (`Range` supported)", None,
             media_type="application/octet-stream", errors=(404, 416)),
    Endpoint("DELETE", "/media/{id}", delete_media,
             "Delete a media item (409 while an unfinished job uses it)", None, status=204,
             errors=(404, 409)),
]
