"""The OpenAPI 3.1 document, generated from the endpoint table and the very pydantic models
the handlers validate and render with, so it cannot drift from the code."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from scheduler.api.endpoint import Endpoint
from scheduler.api.schemas import ErrorBody

Document = dict[str, Any]
OPENAPI = web.AppKey("openapi", dict)

_ERRORS = {
    400: "The body is not valid JSON",
    401: "Missing or wrong bearer token",
    404: "No such id",
    409: "The request conflicts with the current state",
    422: "Validation failed; `details` names each field",
    503: "MongoDB or Redis is unreachable; retry later",
}
_PATH_PARAM = re.compile(r"{(\w+)}")


def openapi_document(endpoints: Sequence[Endpoint], prefix: str) -> Document:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for e in endpoints:
        wanted += [(m, "validation") for m in (e.body, e.query) if m is not None]
        if e.response is not None:
            wanted.append((e.response, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(wanted)),
                                   ref_template="#/components/schemas/{model}")
    schemas: Document = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> Document:
        return dict(refs[(model, mode)])

    paths: Document = {}
    for e in endpoints:
        paths.setdefault(prefix + e.path, {})[e.method.lower()] = _operation(e, ref, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Herald admin API", "version": "1",
                 "description": "Schedules social-media posts and publishes each exactly once."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(e: Endpoint, ref: Any, schemas: Document) -> Document:
    parameters: list[Document] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(e.path)
    ]
    if e.query is not None:
        query = schemas[ref(e.query, "validation")["$ref"].rpartition("/")[2]]
        parameters += [
            {"name": name, "in": "query", "required": name in query.get("required", []),
             "schema": schema}
            for name, schema in query["properties"].items()
        ]
    responses: Document = {str(e.status): _success(e, ref)}
    for status in sorted({*e.errors, *(() if e.public else (401, 503))}):
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}},
        }
    operation: Document = {
        "operationId": e.handler.__name__,
        "summary": e.summary,
        "tags": [e.path.split("/")[1]],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if e.body is not None:
        operation["requestBody"] = {
            "required": e.body_required,
            "content": {"application/json": {"schema": ref(e.body, "validation")}},
        }
    if e.public:
        operation["security"] = []
    return operation


def _success(e: Endpoint, ref: Any) -> Document:
    if e.status == 204:
        return {"description": "Done; no body"}
    if e.response is not None:
        schema = ref(e.response, "serialization")
    elif e.media_type == "text/event-stream":
        schema = {"type": "string"}
    else:
        schema = {"type": "object"}
    return {"description": "OK", "content": {e.media_type: {"schema": schema}}}


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


ENDPOINTS = [
    Endpoint("GET", "/openapi.json", get_openapi, "This document (no authentication)", None,
             public=True),
]
