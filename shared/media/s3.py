"""The S3-compatible media backend (AWS S3, Cloudflare R2, MinIO, SeaweedFS), chosen with
`HERALD_MEDIA_STORE=s3://bucket[/prefix]` and `HERALD_S3_ENDPOINT`; credentials and region come
from the environment as for any AWS client (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_REGION`). Uploads go up in parts of a fixed size (S3's multipart upload), so a node holds
one part at most; platforms that fetch media themselves get the store's own presigned URLs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from shared.config import Settings
from shared.media.store import MediaStore, MediaUnavailable
from shared.store import Store

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

#: The size of each part of a multipart upload (S3 takes 5 MiB to 5 GiB, 10,000 parts: 80 GiB
#: at this size), and so the most of an upload a node holds.
PART_BYTES = 8 * 1024 * 1024
READ_CHUNK = 256 * 1024
DEFAULT_REGION = "us-east-1"


def bucket_and_prefix(media_store: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` → (`bucket`, `some/prefix/`)."""
    bucket, _, prefix = media_store.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _failed(exc: BotoCoreError | ClientError) -> MediaUnavailable:
    """The store's error code (`SlowDown`, `NoSuchBucket`, ...) or the client's error kind;
    not the message, which can quote the request."""
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    return MediaUnavailable(f"the S3 store failed: {code or type(exc).__name__}")


class S3MediaStore(MediaStore):
    backend = "s3"

    def __init__(self, store: Store, settings: Settings, client: S3Client,
                 stack: AsyncExitStack) -> None:
        super().__init__(store, settings)
        self.client = client
        self.bucket, self._prefix = bucket_and_prefix(settings.media_store)
        self._stack = stack

    @classmethod
    async def open(cls, store: Store, settings: Settings) -> S3MediaStore:
        session = get_session()
        region = session.get_config_variable("region") or DEFAULT_REGION
        config = AioConfig(
            connect_timeout=10, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
            # A custom endpoint (MinIO, SeaweedFS, R2) is addressed by path, not by subdomain.
            s3={"addressing_style": "path" if settings.s3_endpoint else "auto"},
            signature_version="s3v4",
        )
        stack = AsyncExitStack()
        client = await stack.enter_async_context(session.create_client(
            "s3", endpoint_url=settings.s3_endpoint, region_name=region, config=config))
        return cls(store, settings, client, stack)

    def key(self, media_id: str) -> str:
        return f"{self._prefix}{media_id}"

    async def write(self, media_id: str, chunks: AsyncIterator[bytes], content_type: str) -> None:
        target: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(media_id)}
        pending = bytearray()
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []

        async def send_part(upload: str, data: bytes) -> None:
            number = len(parts) + 1
            answer = await self.client.upload_part(
                **target, UploadId=upload, PartNumber=number, Body=data)
            parts.append({"ETag": answer["ETag"], "PartNumber": number})

        try:
            async for chunk in chunks:
                pending += chunk
                while len(pending) >= PART_BYTES:
                    if upload_id is None:
                        started = await self.client.create_multipart_upload(
                            **target, ContentType=content_type)
                        upload_id = started["UploadId"]
                    await send_part(upload_id, bytes(pending[:PART_BYTES]))
                    del pending[:PART_BYTES]
            if upload_id is None:
                await self.client.put_object(**target, Body=bytes(pending),
                                             ContentType=content_type)
                return
            if pending:
                await send_part(upload_id, bytes(pending))
            await self.client.complete_multipart_upload(
                **target, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException as exc:
            if upload_id is not None:
                await self._quietly_abort(target, upload_id)
            if isinstance(exc, (BotoCoreError, ClientError)):
                raise _failed(exc) from None
            raise

    async def _quietly_abort(self, target: dict[str, Any], upload_id: str) -> None:
        """An upload left incomplete costs storage until the bucket's lifecycle rule removes
        it; failing to abort must not hide why the upload failed."""
        with suppress(BotoCoreError, ClientError):
            await self.client.abort_multipart_upload(**target, UploadId=upload_id)

    async def read(self, media_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        if end <= start:
            return
        try:
            answer = await self.client.get_object(
                Bucket=self.bucket, Key=self.key(media_id), Range=f"bytes={start}-{end - 1}")
            async with answer["Body"] as stream:
                while chunk := await stream.read(READ_CHUNK):
                    yield chunk
        except (BotoCoreError, ClientError) as exc:
            raise _failed(exc) from None

    async def erase(self, media_id: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=self.key(media_id))
        except (BotoCoreError, ClientError) as exc:
            raise _failed(exc) from None

    @property
    def public_urls(self) -> bool:
        return True

    async def presign(self, media_id: str, seconds: int) -> str | None:
        url: str = await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(media_id)},
            ExpiresIn=seconds)
        return url

    async def close(self) -> None:
        await super().close()
        await self._stack.aclose()
