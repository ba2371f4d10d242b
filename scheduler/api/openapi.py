"""The OpenAPI 3.1 document, generated from the endpoint table and the very pydantic models
the handlers validate and render with, so it cannot drift from the code. An account's `config`
and `credentials` are checked by the platform's provider after the body's shape, so they are
described from the providers' models, one schema per platform in this build. Patterns are
spelt out where JSON Schema (ECMA-262) reads them otherwise than pydantic (Rust's regex)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from scheduler.api.auth import READ_METHODS
from scheduler.api.endpoint import Endpoint
from scheduler.api.schemas import AccountCreate, AccountPatch, ErrorBody
from shared.providers.registry import PROVIDERS

Document = dict[str, Any]
OPENAPI = web.AppKey("openapi", dict)

_ERRORS = {
    400: "The body is not valid JSON",
    401: "Missing or wrong bearer token",
    403: "The viewer token may only read",
    404: "No such id",
    409: "The request conflicts with the current state",
    413: "The body is larger than a node accepts",
    415: "The file's type is not one the API accepts",
    416: "The range lies outside the item",
    422: "Validation failed; `details` names each field",
    503: "MongoDB or Redis is unreachable; retry later",
}
_PATH_PARAM = re.compile(r"{(\w+)}")
#: `\s` as pydantic matches it (Rust's regex: Unicode White_Space), spelt out: JSON Schema's
#: `\s` (ECMA-262) lacks U+0085 and has U+FEFF.
_SPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def openapi_document(endpoints: Sequence[Endpoint], prefix: str) -> Document:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for e in endpoints:
        wanted += [(m, "validation") for m in (e.body, e.query) if m is not None]
        if e.response is not None:
            wanted.append((e.response, "serialization"))
    wanted += [(m, "validation") for p in PROVIDERS.values() for m in (p.Config, p.Credentials)]
    refs, top = models_json_schema(list(dict.fromkeys(wanted)),
                                   ref_template="#/components/schemas/{model}")
    schemas: Document = top.get("$defs", {})
    _patterns_as_matched(schemas)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> Document:
        return dict(refs[(model, mode)])

    _per_platform(schemas, ref)

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


def _per_platform(schemas: Document, ref: Any) -> None:
    """`AccountCreate` gains a `oneOf` with a branch per platform, its `config` and
    `credentials` being that provider's models (required when the model has required keys).
    `AccountPatch` takes, for each, any platform's keys, each optional, since a PATCH merges
    them into the stored ones; a key sent as null is removed, so null is allowed for the keys a
    platform can do without."""
    create, patch = (schemas[_name(ref(m, "validation"))] for m in (AccountCreate, AccountPatch))
    branches: dict[str, Document] = {}
    partials: dict[str, list[Document]] = {"config": [], "credentials": []}
    for platform, provider in sorted(PROVIDERS.items()):
        title = provider.__name__.removesuffix("Provider") + "AccountCreate"
        branch: Document = {"title": title, "type": "object",
                            "properties": {"platform": {"const": platform}},
                            "required": ["platform"]}
        for key, model in (("config", provider.Config), ("credentials", provider.Credentials)):
            name = _name(ref(model, "validation"))
            branch["properties"][key] = _ref(name)
            if schemas[name].get("required"):
                branch["required"].append(key)
            schemas[f"{name}Patch"] = _partial(schemas[name], f"{name}Patch")
            partials[key].append(_ref(f"{name}Patch"))
        schemas[title] = branch
        branches[platform] = _ref(title)
    create["oneOf"] = list(branches.values())
    create["discriminator"] = {"propertyName": "platform",
                               "mapping": {p: r["$ref"] for p, r in branches.items()}}
    for key, options in partials.items():
        described = {k: v for k, v in patch["properties"][key].items()
                     if k in ("title", "description")}
        patch["properties"][key] = {**described, "anyOf": options}


def _partial(component: Document, title: str) -> Document:
    """A model's keys as a PATCH may send them: none required, no defaults (a key left out
    keeps its stored value), null only where the model does not require the key."""
    required = set(component.get("required", ()))
    properties: Document = {}
    for key, schema in component.get("properties", {}).items():
        schema = {k: v for k, v in schema.items() if k != "default"}
        nullable = {"type": "null"} in schema.get("anyOf", ())
        properties[key] = schema if key in required or nullable else {
            "anyOf": [schema, {"type": "null"}]}
    kept = {k: v for k, v in component.items() if k not in ("required", "properties")}
    return {**kept, "title": title, "properties": properties}


def _name(reference: Document) -> str:
    name: str = reference["$ref"].rpartition("/")[2]
    return name


def _ref(name: str) -> Document:
    return {"$ref": f"#/components/schemas/{name}"}


def _patterns_as_matched(node: Any) -> None:
    """Every `pattern` below `node`, spelt out where the server reads it otherwise."""
    if isinstance(node, list):
        for item in node:
            _patterns_as_matched(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                node[key] = _spelt_out(value)
            else:
                _patterns_as_matched(value)


def _spelt_out(pattern: str) -> str:
    r"""`\s` as its characters (inside a class) or a class of them, and `\S` outside a class
    as the negated class; anything else as written."""
    parts: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        token = pattern[i:i + 2] if pattern[i] == "\\" else pattern[i]
        i += len(token)
        if token == r"\s":
            token = _SPACE if in_class else f"[{_SPACE}]"
        elif token == r"\S" and not in_class:
            token = f"[^{_SPACE}]"
        elif token in ("[", "]"):
            in_class = token == "["
        parts.append(token)
    return "".join(parts)


def _operation(e: Endpoint, ref: Any, schemas: Document) -> Document:
    parameters: list[Document] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(e.path)
    ]
    if e.query is not None:
        query = schemas[_name(ref(e.query, "validation"))]
        parameters += [
            {"name": name, "in": "query", "required": name in query.get("required", []),
             "schema": schema}
            for name, schema in query["properties"].items()
        ]
    responses: Document = {str(e.status): _success(e, ref)}
    if 416 in e.errors:  # a route that can refuse a range serves ranges
        responses["206"] = {**_success(e, ref), "description": "The range asked for"}
    statuses = {*e.errors, *(() if e.public else (401, 503)), *(() if e.body is None else (413,)),
                *(() if e.public or e.method in READ_METHODS else (403,))}
    for status in sorted(statuses):
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
            "content": {e.body_media_type: {"schema": ref(e.body, "validation")}},
        }
    if e.public:
        operation["security"] = []
    return operation


def _success(e: Endpoint, ref: Any) -> Document:
    if e.status == 204:
        return {"description": "Done; no body"}
    if e.response is not None:
        schema = ref(e.response, "serialization")
    elif e.media_type != "application/json":
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
