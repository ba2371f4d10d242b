"""The media API (API.md "Media") over a real socket, against GridFS and a real S3-compatible
server alike: uploads streamed part by part, the type taken from the bytes, the size limit,
metadata, `Range`, deletion while in use, unknown ids in posts, and the signed public URL."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.payload import AsyncIterablePayload

from shared.media.signing import UrlSigner
from shared.models import JobState
from shared.runtime import Runtime
from tests.integration.api_support import Api, Reply, assert_error_shape, serve_api, set_job
from tests.integration.media_fixtures import MAX_BYTES, PUBLIC_BASE, image, video

MiB = 1024 * 1024


async def _pieces(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def upload(api: Api, data: bytes | AsyncIterator[bytes], *, alt: str | None = None,
                 filename: str = "upload.txt", content_type: str = "text/plain",
                 alt_after: bool = False) -> Reply:
    """`POST /media` with the file as a streamed part (chunked, no length), and a misleading
    file name and part type: the server must go by the bytes."""
    form = aiohttp.MultipartWriter("form-data")
    if alt is not None and not alt_after:
        form.append(alt).set_content_disposition("form-data", name="alt")
    source = _pieces(data) if isinstance(data, bytes) else data
    part = form.append_payload(AsyncIterablePayload(source, content_type=content_type))
    part.set_content_disposition("form-data", name="file", filename=filename)
    if alt is not None and alt_after:
        form.append(alt).set_content_disposition("form-data", name="alt")
    return await _send(api, "POST", "/media", data=form)


async def _send(api: Api, method: str, path: str, **kwargs: Any) -> Reply:
    headers = {"Authorization": f"Bearer {api.token}", **kwargs.pop("headers", {})}
    async with api.client.request(method, f"/api/v1{path}", headers=headers,
                                  **kwargs) as response:
        body = await response.read()
        parsed = (await response.json() if body and
                  response.content_type == "application/json" else None)
        return Reply(response.status, parsed, body.decode("latin-1"), response.headers)


async def content(api: Api, media_id: str, range_: str | None = None) -> tuple[int, bytes,
                                                                                Any]:
    headers = {"Authorization": f"Bearer {api.token}"}
    if range_ is not None:
        headers["Range"] = range_
    async with api.client.get(f"/api/v1/media/{media_id}/content", headers=headers) as response:
        return response.status, await response.read(), response.headers


async def stored_nothing(rt: Runtime) -> None:
    """No record and no bytes: not in GridFS, not in the S3 bucket."""
    assert await rt.media.records.count_documents({}) == 0
    assert await rt.store.db["media.files"].count_documents({}) == 0
    assert await rt.store.db["media.chunks"].count_documents({}) == 0
    client = getattr(rt.media, "client", None)
    if client is not None:
        store: Any = rt.media
        listed = await client.list_objects_v2(Bucket=store.bucket, Prefix=store.key(""))
        assert listed.get("KeyCount", 0) == 0, listed
        unfinished = await client.list_multipart_uploads(Bucket=store.bucket,
                                                         Prefix=store.key(""))
        assert not unfinished.get("Uploads"), unfinished


async def test_a_large_upload_is_streamed_in_and_read_back_whole(
        media_runtime: Runtime) -> None:
    data = image("PNG", (320, 200), padding=20 * MiB)
    async with serve_api(media_runtime) as api:
        reply = await upload(api, data, alt="a wide red picture")
        assert reply.status == 201, reply.body
        made = reply.body
        assert set(made) >= {"id", "content_type", "size", "sha256", "width", "height",
                             "duration_seconds", "created_at"}
        assert made["content_type"] == "image/png"
        assert made["size"] == len(data)
        assert made["sha256"] == hashlib.sha256(data).hexdigest()
        assert (made["width"], made["height"], made["duration_seconds"]) == (320, 200, None)
        assert made["alt"] == "a wide red picture"
        assert made["created_at"].endswith("Z")

        assert (await _send(api, "GET", f"/media/{made['id']}")).body == made
        status, body, headers = await content(api, made["id"])
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == made["sha256"]
        assert headers["Content-Type"] == "image/png"
        assert headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("backend", ["gridfs"], indirect=True)
async def test_the_type_and_its_metadata_come_from_the_bytes(media_runtime: Runtime) -> None:
    cases = [
        (image("JPEG", (33, 21)), "image/jpeg", (33, 21, None)),
        (image("PNG", (8, 9)), "image/png", (8, 9, None)),
        (image("GIF", (16, 4)), "image/gif", (16, 4, None)),
        (image("WEBP", (12, 10)), "image/webp", (12, 10, None)),
        (video("mp4", seconds=2), "video/mp4", (64, 48, 2.0)),
        (video("mov", seconds=3, size=(80, 64)), "video/quicktime", (80, 64, 3.0)),
        (video("webm", "libvpx", seconds=1), "video/webm", (64, 48, 1.0)),
    ]
    async with serve_api(media_runtime) as api:
        for data, kind, (width, height, duration) in cases:
            reply = await upload(api, data, filename="notes.txt", content_type="text/plain")
            assert reply.status == 201, (kind, reply.body)
            made = reply.body
            assert made["content_type"] == kind
            assert (made["width"], made["height"]) == (width, height), (kind, made)
            if duration is None:
                assert made["duration_seconds"] is None
            else:
                assert made["duration_seconds"] == pytest.approx(duration, abs=0.15), made


async def test_another_type_is_415_and_nothing_is_stored(media_runtime: Runtime) -> None:
    refused = {
        "text": b"just some words, not a picture\n" * 100,
        "matroska (not webm)": video("matroska", seconds=1),
        "png signature, then junk": b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 2000,
    }
    async with serve_api(media_runtime) as api:
        for name, data in refused.items():
            reply = await upload(api, data, filename="x.png", content_type="image/png")
            assert reply.status == 415, (name, reply.body)
            assert_error_shape(reply.body)
            assert reply.body["error"]["details"][0]["field"] == "file"
        await stored_nothing(media_runtime)


async def test_a_file_past_the_limit_is_413_and_nothing_is_stored(
        media_runtime: Runtime) -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield image("PNG")
        for _ in range(MAX_BYTES // MiB + 1):
            yield bytes(MiB)

    async with serve_api(media_runtime) as api:
        reply = await upload(api, endless())  # chunked: found out while streaming
        assert reply.status == 413, reply.body
        assert_error_shape(reply.body)
        declared = await _send(api, "POST", "/media", data=b"x",
                               headers={"Content-Type": "multipart/form-data; boundary=b",
                                        "Content-Length": str(MAX_BYTES + MiB)})
        assert declared.status == 413, declared.body
        await stored_nothing(media_runtime)


@pytest.mark.parametrize("backend", ["gridfs"], indirect=True)
async def test_malformed_uploads_are_refused_and_change_nothing(media_runtime: Runtime) -> None:
    async with serve_api(media_runtime) as api:
        not_a_form = await _send(api, "POST", "/media", json={"file": "abc"})
        assert not_a_form.status == 415, not_a_form.body
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("alt", "no file here")
        no_file = await _send(api, "POST", "/media", data=form)
        assert no_file.status == 422 and no_file.body["error"]["details"][0]["field"] == "file"
        long_alt = await upload(api, image(), alt="a" * 1501, alt_after=True)
        assert long_alt.status == 422 and long_alt.body["error"]["details"][0]["field"] == "alt"
        form = aiohttp.FormData()
        form.add_field("file", image(), filename="a.png")
        form.add_field("caption", "unknown")
        unknown = await _send(api, "POST", "/media", data=form)
        assert unknown.status == 422, unknown.body
        for kind, body in [("multipart/form-data", b"no boundary"),
                           ("multipart/form-data; boundary=xyz", b"no boundary line at all"),
                           ("multipart/form-data; boundary=xyz",
                            b"--xyz\r\nbroken header\r\n\r\nabc\r\n--xyz--\r\n")]:
            broken = await _send(api, "POST", "/media", data=body,
                                 headers={"Content-Type": kind})
            assert broken.status == 400, (body, broken.body)
            assert_error_shape(broken.body)
        await stored_nothing(media_runtime)
        no_token = await api.call("POST", "/media", raw=b"x", token=None)
        assert no_token.status == 401


async def test_range_requests(media_runtime: Runtime) -> None:
    data = image("GIF") + bytes(range(256)) * 5
    size = len(data)
    async with serve_api(media_runtime) as api:
        made = (await upload(api, data)).body
        for asked, (start, end) in {"bytes=10-19": (10, 20), "bytes=-5": (size - 5, size),
                                    f"bytes={size - 3}-": (size - 3, size),
                                    f"bytes=0-{size + 100}": (0, size)}.items():
            status, body, headers = await content(api, made["id"], asked)
            assert status == 206, asked
            assert body == data[start:end], asked
            assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        for ignored in ("bytes=0-1,5-6", "items=0-4", "bytes=9-3"):
            status, body, _ = await content(api, made["id"], ignored)
            assert (status, body) == (200, data), ignored
        for past in (f"bytes={size}-", "bytes=-0"):
            status, body, headers = await content(api, made["id"], past)
            assert status == 416, past
            assert headers["Content-Range"] == f"bytes */{size}"
        assert (await content(api, "0123456789abcdef01234567"))[0] == 404


async def test_delete_is_refused_while_an_unfinished_job_uses_the_media(
        media_runtime: Runtime) -> None:
    rt = media_runtime
    async with serve_api(rt) as api:
        used = (await upload(api, image())).body
        in_thread = (await upload(api, image("JPEG"))).body
        override = (await upload(api, image("GIF"))).body
        account = await api.account()
        post = await api.post([account["id"]])
        job_id = post["jobs"][0]["id"]
        # Arranged in the record: no platform of this build publishes media yet.
        await rt.store.posts.update_one({"_id": post["id"]}, {"$set": {"content": {
            "text": "Hello", "media": [{"id": used["id"]}],
            "thread": [{"text": "more", "media": [{"id": in_thread["id"]}]}]}}})
        await set_job(rt, job_id, content_override={"text": "x", "media": [
            {"id": override["id"]}]})
        for item in (used, in_thread, override):
            refused = await _send(api, "DELETE", f"/media/{item['id']}")
            assert refused.status == 409, refused.body
            assert (await _send(api, "GET", f"/media/{item['id']}")).status == 200

        await set_job(rt, job_id, state=str(JobState.SUCCEEDED))
        for item in (used, in_thread, override):
            assert (await _send(api, "DELETE", f"/media/{item['id']}")).status == 204
            assert (await _send(api, "GET", f"/media/{item['id']}")).status == 404
            assert (await content(api, item["id"]))[0] == 404
        assert (await _send(api, "DELETE", f"/media/{used['id']}")).status == 404
        await stored_nothing(rt)


@pytest.mark.parametrize("backend", ["gridfs"], indirect=True)
async def test_a_post_naming_unknown_media_is_422_naming_the_field(
        media_runtime: Runtime) -> None:
    async with serve_api(media_runtime) as api:
        account = await api.account()
        known = (await upload(api, image())).body
        unknown = "0123456789abcdef01234567"
        body = {"account_ids": [account["id"]], "schedule": {"at": "2099-01-01T00:00:00Z"},
                "content": {"text": "hi", "media": [{"id": known["id"]}, {"id": unknown}],
                            "thread": [{"text": "two", "media": [{"id": unknown}]}]}}
        reply = await api.rejected("POST", "/posts", body, status=422,
                                   field="content.media.1.id")
        fields = [d["field"] for d in reply.body["error"]["details"]]
        assert "content.thread.0.media.0.id" in fields
        assert "content.media.0.id" not in fields
        both = {**body, "content": {"text": "x", "media": [
            {"id": known["id"], "url": "https://example.org/a.png"}]}}
        await api.rejected("POST", "/posts", both, status=422, field="content.media.0")


async def test_the_signed_public_url_serves_the_bytes_until_it_expires(
        media_runtime: Runtime) -> None:
    rt = media_runtime
    data = image("WEBP", (50, 40))
    async with serve_api(rt) as api:
        made = (await upload(api, data)).body
        url = rt.media.signed_url(made["id"])
        assert url.startswith(f"{PUBLIC_BASE}/public/media/{made['id']}?expires=")
        path = url.removeprefix(PUBLIC_BASE)

        async def fetch(target: str, range_: str | None = None) -> tuple[int, bytes]:
            headers = {"Range": range_} if range_ else {}
            async with api.client.get(target, headers=headers) as response:  # no token
                return response.status, await response.read()

        assert await fetch(path) == (200, data)
        assert await fetch(path, "bytes=2-5") == (206, data[2:6])
        async with api.client.head(path) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(data))
            assert await response.read() == b""
        signer = UrlSigner(rt.settings.secret_key)
        expired = f"/public/media/{made['id']}?{signer.query(made['id'], int(time.time()) - 1)}"
        tampered = path[:-1] + ("0" if path[-1] != "0" else "1")
        other = path.replace(made["id"], "0123456789abcdef01234567")
        stranger = UrlSigner("c2VjcmV0LWtleS1vZi1hbm90aGVyLWluc3RhbGxhdGlvbg==")
        foreign = (f"/public/media/{made['id']}?"
                   f"{stranger.query(made['id'], int(time.time()) + 60)}")
        unsigned = f"/public/media/{made['id']}"
        for refused in (expired, tampered, other, foreign, unsigned):
            status, body = await fetch(refused)
            assert status == 403, refused
            assert b"forbidden" in body
        await _send(api, "DELETE", f"/media/{made['id']}")
        assert (await fetch(path))[0] == 404


@pytest.mark.parametrize("backend", ["gridfs"], indirect=True)
async def test_the_document_describes_the_media_routes(media_runtime: Runtime) -> None:
    async with serve_api(media_runtime) as api:
        document = (await api.call("GET", "/openapi.json", token=None)).body
    paths = document["paths"]
    upload_op = paths["/api/v1/media"]["post"]
    form = upload_op["requestBody"]["content"]["multipart/form-data"]["schema"]
    upload_schema = document["components"]["schemas"][form["$ref"].rpartition("/")[2]]
    assert upload_schema["required"] == ["file"]
    assert upload_schema["properties"]["file"]["format"] == "binary"
    assert {"201", "413", "415", "422"} <= set(upload_op["responses"])
    download = paths["/api/v1/media/{id}/content"]["get"]["responses"]
    assert {"200", "206", "404", "416"} <= set(download)
    assert "409" in paths["/api/v1/media/{id}"]["delete"]["responses"]
    media = document["components"]["schemas"]["Media"]
    assert media["oneOf"] == [{"required": ["id"], "properties": {"id": {"type": "string"}}},
                              {"required": ["url"], "properties": {"url": {"type": "string"}}}]
