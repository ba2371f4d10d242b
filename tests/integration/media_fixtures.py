"""Fixtures for the media tests: a real S3-compatible server (SeaweedFS's S3 gateway, built by
`make s3-server`), a runtime per media backend (the same tests run against GridFS and S3), and
media files made here: images by Pillow, videos encoded by PyAV."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import av
import pytest
from aiobotocore.session import get_session
from PIL import Image

from shared.config import load_settings
from shared.runtime import Runtime
from tests.conftest import _drop_database
from tools.devservers import Server, free_port, wait_for_port


def _weed() -> Path:
    """`make s3-server`'s binary: the Makefile names it in HERALD_WEED; run by hand, the newest
    build in its cache."""
    if os.environ.get("HERALD_WEED"):
        return Path(os.environ["HERALD_WEED"])
    built = sorted(Path.home().glob(".cache/herald/seaweedfs-*/weed"))
    return built[-1] if built else Path.home() / ".cache/herald/seaweedfs/weed"


S3_KEY, S3_SECRET = "herald-test-key", "herald-test-secret-0123456789"
PUBLIC_BASE = "https://herald.example/base"
BUCKET = "herald-media"
#: The limit the media runtimes run with: above the large upload, far below the default.
MAX_BYTES = 48 * 1024 * 1024


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """SeaweedFS in one process (master, volume, filer and its S3 gateway) on loopback, with
    one identity; the S3 endpoint URL."""
    weed = _weed()
    if not weed.exists():
        pytest.fail(f"{weed} is missing: run `make s3-server` (SeaweedFS from the Go module "
                    "proxy)")
    with tempfile.TemporaryDirectory(prefix="herald-weed-") as data:
        config = Path(data) / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "herald", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}]}]}))
        ports = {name: free_port() for name in ("s3", "master", "volume", "filer")}
        grpc = {name: free_port() for name in ports}
        args = [str(weed), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                *(f"-{name}.port={port}" for name, port in ports.items()),
                *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
                "-filer", "-s3", f"-s3.config={config}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
                "-volume.max=100"]
        s3_port = ports["s3"]
        with open(Path(data) / "weed.log", "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        server = Server("seaweedfs", s3_port, proc)
        try:
            wait_for_port(s3_port, proc, 60, "seaweedfs s3")
            yield f"http://127.0.0.1:{s3_port}"
        finally:
            server.stop()


async def _make_bucket(endpoint: str, bucket: str) -> None:
    """One bucket for the session (each bucket is a SeaweedFS collection with volumes of its
    own); each test keeps to its own prefix."""
    async with get_session().create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET) as client:
        with suppress(client.exceptions.BucketAlreadyOwnedByYou,
                      client.exceptions.BucketAlreadyExists):
            await client.create_bucket(Bucket=bucket)


@pytest.fixture(params=["gridfs", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def media_runtime(backend: str, env: dict[str, str], isolation: str,
                        monkeypatch: pytest.MonkeyPatch,
                        request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    """A runtime whose media store is `backend`, with a public base URL."""
    for key in ("MONGODB_URI", "REDIS_URL", "HERALD_MONGODB_URI", "HERALD_REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    extra = {"HERALD_PUBLIC_BASE_URL": PUBLIC_BASE, "HERALD_MEDIA_MAX_BYTES": str(MAX_BYTES)}
    if backend == "s3":
        endpoint: str = request.getfixturevalue("s3_server")
        await _make_bucket(endpoint, BUCKET)
        extra.update(HERALD_MEDIA_STORE=f"s3://{BUCKET}/{isolation}/uploads",
                     HERALD_S3_ENDPOINT=endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    for key, value in {**env, **extra}.items():
        monkeypatch.setenv(key, value)
    rt = await Runtime.open(load_settings())
    try:
        yield rt
    finally:
        await rt.close()
        await _drop_database(rt.settings.mongodb_uri)


# --- files ----------------------------------------------------------------------------------


def image(kind: str = "PNG", size: tuple[int, int] = (40, 30), padding: int = 0) -> bytes:
    """An image of `kind`; `padding` bytes after its end make a large file that still reads."""
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(out, kind)
    return out.getvalue() + os.urandom(padding)


def video(container: str = "mp4", codec: str = "libx264", seconds: int = 2, fps: int = 10,
          size: tuple[int, int] = (64, 48)) -> bytes:
    """A short video of solid frames, encoded for real."""
    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream: Any = muxer.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for n in range(seconds * fps):
            frame = av.VideoFrame(size[0], size[1], "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([n * 7 % 256]) * plane.buffer_size)
            frame.pts = n
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode():
            muxer.mux(packet)
    return out.getvalue()
