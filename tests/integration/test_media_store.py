"""The media store as the executor and the scheduling checks use it (`rt.media`), against
GridFS and a real S3-compatible server: a post's media resolved into files streamed from the
store in exact chunks, what `describe` tells the providers' checks, media by URL fetched at
publish time (never from a private address unless allowed), and public URLs: Herald's signed
one for GridFS, the object store's presigned one for S3."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from gridfs import NoFile

from shared.config import SettingsError, load_settings
from shared.media import open_media_store
from shared.media.fetch import is_public
from shared.media.s3 import bucket_and_prefix
from shared.media.store import MediaStore, MediaUnavailable
from shared.models import Content
from shared.providers.base import MediaFile, MediaInfo, Permanent, Transient
from shared.runtime import Runtime
from tests.integration.media_fixtures import MAX_BYTES, PUBLIC_BASE, image, video

MiB = 1024 * 1024
Serve = Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[str]]


async def _pieces(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def stored(rt: Runtime, data: bytes, alt: str = "") -> str:
    record = await rt.media.save(_pieces(data), alt=alt)
    media_id: str = record["_id"]
    return media_id


async def read_all(item: MediaFile, chunk_size: int, start: int = 0,
                   end: int | None = None) -> list[bytes]:
    return [chunk async for chunk in item.chunks(chunk_size, start, end)]


@pytest.fixture
async def private_ok(media_runtime: Runtime) -> AsyncIterator[MediaStore]:
    """The same store, but with HERALD_ALLOW_PRIVATE_URLS set (the test servers are local)."""
    settings = media_runtime.settings.model_copy(update={"allow_private_urls": True})
    store = await open_media_store(media_runtime.store, settings)
    try:
        yield store
    finally:
        await store.close()


async def test_a_posts_media_resolve_to_files_streamed_in_exact_chunks(
        media_runtime: Runtime) -> None:
    rt = media_runtime
    big = image("PNG", (64, 64), padding=10 * MiB + 12345)
    clip = video("mp4", seconds=2)
    first, second = await stored(rt, big, alt="stored alt"), await stored(rt, clip)
    content = Content.model_validate({"text": "hi", "media": [{"id": first}], "thread": [
        {"text": "two", "media": [{"id": second, "alt": "a clip"}]}, {"text": "three"}]})

    parts = await rt.media.resolve(content)
    assert [len(p) for p in parts] == [1, 1, 0]
    picture, movie = parts[0][0], parts[1][0]
    assert (picture.id, picture.alt, movie.alt) == (first, "stored alt", "a clip")
    assert picture.info == MediaInfo("image/png", len(big), 64, 64, None)
    assert movie.info.content_type == "video/mp4"
    assert movie.info.duration_seconds == pytest.approx(2.0, abs=0.15)

    chunk = 256 * 1024
    chunks = await read_all(picture, chunk)
    assert all(len(c) == chunk for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == picture.sha256
    assert picture.sha256 == hashlib.sha256(big).hexdigest()
    middle = await read_all(picture, 1000, start=5 * MiB - 7, end=5 * MiB + 2500)
    assert [len(c) for c in middle] == [1000, 1000, 507]
    assert b"".join(middle) == big[5 * MiB - 7:5 * MiB + 2500]
    assert b"".join(await read_all(movie, 999)) == clip


async def test_describe_tells_the_checks_what_is_known_and_names_unknown_ids(
        media_runtime: Runtime) -> None:
    rt = media_runtime
    known = await stored(rt, image("JPEG", (30, 20)))
    content = Content.model_validate({"text": "hi", "media": [
        {"id": known}, {"url": "https://example.org/x.mp4", "mime_type": "video/mp4"}],
        "thread": [{"text": "b", "media": [{"id": "0123456789abcdef01234567"}]}]})
    infos, problems = await rt.media.describe(content)
    size = (await rt.media.get(known) or {})["size"]
    assert infos == [[MediaInfo("image/jpeg", size, 30, 20, None), MediaInfo("video/mp4")], []]
    assert problems == [("content.thread.0.media.0.id",
                         "no media with id '0123456789abcdef01234567'")]


async def test_media_deleted_before_publishing_is_permanent(media_runtime: Runtime) -> None:
    rt = media_runtime
    gone = await stored(rt, image())
    assert await rt.media.delete(gone)
    with pytest.raises(Permanent, match="deleted"):
        await rt.media.resolve(Content.model_validate({"text": "x", "media": [{"id": gone}]}))


async def test_public_urls(media_runtime: Runtime, session: aiohttp.ClientSession) -> None:
    """GridFS: Herald's signed URL (the route is tested with the API). S3: the object store's
    own presigned URL, fetched from the S3 server with no credentials: the bytes round-trip."""
    rt = media_runtime
    data = video("webm", "libvpx", seconds=1)
    media_id = await stored(rt, data)
    [[item]] = await rt.media.resolve(Content.model_validate(
        {"text": "x", "media": [{"id": media_id}]}))
    url = item.public_url()
    if rt.media.backend == "gridfs":
        assert url.startswith(f"{PUBLIC_BASE}/public/media/{media_id}?expires=")
        unset = rt.settings.model_copy(update={"public_base_url": None})
        bare = await open_media_store(rt.store, unset)
        try:
            [[without]] = await bare.resolve(Content.model_validate(
                {"text": "x", "media": [{"id": media_id}]}))
            with pytest.raises(Permanent, match="HERALD_PUBLIC_BASE_URL"):
                without.public_url()
        finally:
            await bare.close()
    else:
        assert "X-Amz-Signature=" in url and "/uploads/" in url
        async with session.get(url) as response:
            assert response.status == 200
            assert await response.read() == data
        async with session.get(url, headers={"Range": "bytes=4-9"}) as response:
            assert response.status == 206
            assert await response.read() == data[4:10]
        async with session.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0")) as refused:
            assert refused.status == 403


@pytest.mark.parametrize("backend", ["gridfs"], indirect=True)
async def test_media_urls_are_fetched_without_cookies_earlier_fetches_were_given(
        private_ok: MediaStore, serve: Serve) -> None:
    """One session fetches every post's media: a cookie an origin's answer sets is not sent
    with the next fetch, the same post's or another's."""
    data = image("JPEG", (30, 20))
    sent: list[str | None] = []

    async def origin(request: web.Request) -> web.StreamResponse:
        sent.append(request.headers.get("Cookie"))
        response = web.Response(body=data)
        response.set_cookie("session", f"fetch-{len(sent)}")
        return response

    # By name: aiohttp's usual cookie jar ignores the cookies of a host given as an address.
    base = (await serve(origin)).replace("127.0.0.1", "localhost")
    for n in range(2):
        await private_ok.resolve(Content.model_validate(
            {"text": "x", "media": [{"url": f"{base}/{n}.jpg"}]}))
    assert sent == [None, None]


async def test_urls_to_private_addresses_are_refused(media_runtime: Runtime,
                                                     serve: Serve) -> None:
    async def picture(_request: web.Request) -> web.Response:
        return web.Response(body=image(), content_type="image/png")

    origin = await serve(picture)  # http://127.0.0.1:<port>
    port = origin.rsplit(":", 1)[1]

    async def redirect(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{origin}/picture.png")

    hop = await serve(redirect)
    for url in (f"{origin}/picture.png", f"http://localhost:{port}/picture.png",
                f"http://[::1]:{port}/p.png", f"http://[::ffff:127.0.0.1]:{port}/p.png",
                f"{hop}/go"):
        content = Content.model_validate({"text": "x", "media": [{"url": url}]})
        with pytest.raises(Permanent, match=r"not a public address|non-public address"):
            await media_runtime.media.resolve(content)
    assert await media_runtime.media.records.count_documents({}) == 0
    # Other non-public ranges, checked without sending anything their way.
    for address in ("10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                    "0.0.0.0", "224.0.0.1", "fc00::1", "fe80::1", "::"):
        assert not is_public(address), address
    assert is_public("93.184.215.14") and is_public("2606:4700::1111")


async def test_url_media_is_fetched_into_the_store_at_publish_time(
        media_runtime: Runtime, private_ok: MediaStore, serve: Serve) -> None:
    data = image("JPEG", (90, 60), padding=3 * MiB)
    answers = {"/a.jpg": (200, data), "/gone.jpg": (404, b"no"), "/busy.jpg": (503, b"later"),
               "/page.html": (200, b"<html><body>not media</body></html>" * 10)}

    async def origin(request: web.Request) -> web.StreamResponse:
        if request.path == "/moved":
            raise web.HTTPFound("/a.jpg")
        if request.path == "/huge.png":
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(image())
            for _ in range(MAX_BYTES // MiB + 2):
                await response.write(bytes(MiB))
            return response
        status, body = answers[request.path]
        return web.Response(status=status, body=body)

    base = await serve(origin)
    content = Content.model_validate({"text": "x", "media": [
        {"url": f"{base}/a.jpg", "alt": "fetched"}], "thread": [
        {"text": "y", "media": [{"url": f"{base}/moved"}]}]})
    [[first], [second]] = await private_ok.resolve(content)
    for item in (first, second):
        assert item.sha256 == hashlib.sha256(data).hexdigest()
        assert item.info == MediaInfo("image/jpeg", len(data), 90, 60, None)
        assert b"".join(await read_all(item, 64 * 1024)) == data
    assert first.alt == "fetched"
    assert first.id != second.id
    assert first.public_url()

    outcomes = {"/gone.jpg": Permanent, "/page.html": Permanent, "/huge.png": Permanent,
                "/busy.jpg": Transient}
    for path, error in outcomes.items():
        with pytest.raises(error) as raised:
            await private_ok.resolve(Content.model_validate(
                {"text": "x", "media": [{"url": f"{base}{path}"}]}))
        assert type(raised.value) is error, (path, raised.value)
    assert await private_ok.records.count_documents({}) == 2

    # A day on, a later resolve of media by URL removes what earlier ones fetched.
    fetched = await private_ok.records.find({}).to_list()
    await private_ok.records.update_many({}, {"$set": {
        "created_at": media_runtime.clock.now_dt() - timedelta(days=1, seconds=1)}})
    [[again]] = await private_ok.resolve(Content.model_validate(
        {"text": "x", "media": [{"url": f"{base}/a.jpg"}]}))
    assert [r["_id"] for r in await private_ok.records.find({}).to_list()] == [again.id]
    for record in fetched:
        with pytest.raises((NoFile, MediaUnavailable)):
            await private_ok.read_bytes(record["_id"], 0, 10)


def test_media_settings_are_validated_at_start_up(env: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    defaults = load_settings()
    assert (defaults.media_store, defaults.media_max_bytes, defaults.public_base_url,
            defaults.allow_private_urls) == ("gridfs", 1024**3, None, False)
    ok = load_settings(HERALD_MEDIA_STORE="s3://media-bucket/herald/", HERALD_S3_ENDPOINT=
                       "http://127.0.0.1:8333", HERALD_PUBLIC_BASE_URL="https://h.example/x/",
                       HERALD_ALLOW_PRIVATE_URLS="true", HERALD_MEDIA_MAX_BYTES="1000")
    assert ok.public_base_url == "https://h.example/x" and ok.allow_private_urls
    assert bucket_and_prefix(ok.media_store) == ("media-bucket", "herald/")
    for name, value in [("HERALD_MEDIA_STORE", "ftp://bucket"), ("HERALD_MEDIA_STORE", "s3://"),
                        ("HERALD_S3_ENDPOINT", "127.0.0.1:8333"),
                        ("HERALD_PUBLIC_BASE_URL", "https://h.example/?a=b"),
                        ("HERALD_MEDIA_MAX_BYTES", "0"), ("HERALD_ALLOW_PRIVATE_URLS", "maybe")]:
        with pytest.raises(SettingsError, match=f"^{name}: "):
            load_settings(**{name: value})
