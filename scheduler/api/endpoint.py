"""One API operation described once: the router mounts it and the OpenAPI document lists it,
so the document cannot miss a route."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp.typedefs import Handler
from pydantic import BaseModel


@dataclass(frozen=True)
class Endpoint:
    method: str
    #: Relative to /api/v1, with `{name}` path parameters.
    path: str
    handler: Handler
    summary: str
    #: The success body; None for an empty one (204) or a stream.
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    #: Error statuses beyond the ones every authenticated route can answer (401, 503).
    errors: tuple[int, ...] = ()
    public: bool = False
    #: Whether the operation changes something, and is audited: by default a GET does not and
    #: every other method does; True for a GET that stores something (the OAuth callback),
    #: False for a POST that only computes (`POST /posts/preview`).
    changes: bool | None = None
    media_type: str = "application/json"
    #: The request body's type: `multipart/form-data` for an upload, read part by part.
    body_media_type: str = "application/json"
