"""`Streamed`: a request body sent from chunks as they come, with its size declared, alone or as
one part of a multipart body, received whole by a real server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from shared.providers.wire import Streamed, call
from tests.emulators.platform import listen
from tests.emulators.uploads import form_parts


async def test_a_streamed_body_carries_a_content_length_and_arrives_whole(
        session: aiohttp.ClientSession) -> None:
    data = os.urandom(300_000) + b"\r\n--x\r\n"
    seen: list[dict[str, object]] = []
    pulled: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            pulled.append(start)
            yield data[start:start + 64 * 1024]

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        parts = await form_parts(request)
        seen.append({"length": request.headers.get("Content-Length"),
                     "chunked": request.headers.get("Transfer-Encoding"),
                     "sha": hashlib.sha256(body).hexdigest(),
                     "parts": [(p.name, hashlib.sha256(p.data).hexdigest())
                               for p in parts or []]})
        return web.json_response({})

    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_post("/", handler)
    runner, url = await listen(app)
    try:
        await call(session, "POST", url, platform="test",
                   data=Streamed(chunks(), len(data), "image/png"))
        form = aiohttp.MultipartWriter("form-data")
        form.append_payload(Streamed(chunks(), len(data), "image/png")).set_content_disposition(
            "form-data", name="file", filename="a.png")
        await call(session, "POST", url, platform="test", data=form)
    finally:
        await runner.cleanup()
    whole = hashlib.sha256(data).hexdigest()
    assert seen[0] == {"length": str(len(data)), "chunked": None, "sha": whole, "parts": []}
    assert seen[1]["chunked"] is None and seen[1]["length"] is not None
    assert seen[1]["parts"] == [("file", whole)]
    assert len(pulled) == 2 * 5  # read chunk by chunk, once per request
