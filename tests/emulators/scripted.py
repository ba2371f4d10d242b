"""Faults of a platform's own steps (a chunk cut halfway, a publish whose answer is lost), set
on the emulator's attributes by a test in the same process, or through `POST /_faults` by a
test in another (`{"cut_next_chunk": 1}`); the shared faults stay on `/_control`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from tests.emulators.platform import json_object

Handler = Callable[[web.Request], Awaitable[web.Response]]


def faults_route(emulator: Any, kinds: Mapping[str, type]) -> Handler:
    """`POST /_faults`: set the named attributes (each of the type in `kinds`); answers them."""

    async def handler(request: web.Request) -> web.Response:
        change = await json_object(request)
        if change is None:
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        unknown = sorted(set(change) - set(kinds))
        if unknown:
            return web.json_response({"error": f"unknown keys {unknown}"}, status=400)
        try:
            values = {key: kinds[key](value) for key, value in change.items()}
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for key, value in values.items():
            setattr(emulator, key, value)
        return web.json_response({key: getattr(emulator, key) for key in kinds})

    return handler
