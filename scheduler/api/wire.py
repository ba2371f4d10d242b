"""Between HTTP and the models: a request's runtime, its validated body and query string
(or a 400/422), the resource it names (or a 404), and JSON responses rendered from response
models."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pymongo.asynchronous.collection import AsyncCollection

from scheduler.api.errors import ApiError, from_validation, invalid, not_found
from shared.http import RUNTIME
from shared.runtime import Runtime
from shared.store import Doc

M = TypeVar("M", bound=BaseModel)


def runtime(request: web.Request) -> Runtime:
    return request.config_dict[RUNTIME]


def respond(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


async def read_body(request: web.Request, model: type[M], *, required: bool = True) -> M:
    """Validate the JSON body strictly; an empty body counts as `{}` where one is optional."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError(400, "a JSON object body is required", code="invalid_json")
        raw = b"{}"
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise from_validation(exc) from None


def read_query(request: web.Request, model: type[M]) -> M:
    """Query values are strings, so they are validated leniently ("10" is a limit of 10)."""
    repeated = sorted({k for k in request.query if len(request.query.getall(k)) > 1})
    if repeated:
        raise invalid((k, "may be given only once") for k in repeated)
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise from_validation(exc) from None


async def find_or_404(collection: AsyncCollection[Doc], kind: str, ident: str) -> Doc:
    """The document whose `_id` is `ident`, or the 404 that names the kind of resource."""
    doc = await collection.find_one({"_id": ident})
    if doc is None:
        raise not_found(kind, ident)
    return doc
