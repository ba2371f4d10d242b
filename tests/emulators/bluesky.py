"""A Bluesky PDS as far as Herald uses one, on the XRPC paths and with the PDS's answers.

One account (`handle`, `did`, `app_password`). `createSession` trades the app password for a
session from the token book; `refreshSession` takes the refresh JWT as bearer and rotates the
pair (the old refresh JWT is refused afterwards, `400 ExpiredToken` "Token has been revoked",
as the PDS answers a revoked one); when `tokens.refusing` is set both are refused, as after the
app password was revoked. `createRecord` checks what the PDS checks: the bearer token (`400
ExpiredToken` when expired, `400 InvalidToken` when unknown, `401 AuthMissing` without one),
the repo against the token's DID, the record key as a TID (the post lexicon's key type), the
record against the post lexicon (text at most 300 graphemes and 3000 bytes, `createdAt`, at
most 3 `langs`, facet shapes), and it refuses a key that is taken with the PDS's `500
InternalServerError` (its repository tree throws on a second value under one key).
`getRecord` is public and answers `400 RecordNotFound` for a missing key.

Media: `uploadBlob` takes the raw body under its Content-Type (refused without one, or over
`blob_limit`), keeps the blob's SHA-256 and answers the blob (`$type: blob`, `ref.$link`,
`mimeType`, `size`). A post's embed is checked as the lexicons and the PDS check it:
`app.bsky.embed.images` (1 to 4 images, each with `alt`, a blob of this repo's uploads with the
same mimeType and size, `image/*`, at most 1,000,000 bytes, `aspectRatio` positive integers)
or `app.bsky.embed.video` (one `video/mp4` blob of at most 100,000,000 bytes). A `reply` needs
`root` and `parent` strong refs (uri and cid) of posts in this repo.

Written independently of `shared.providers.bluesky`. `GET /_state` adds `calls` (the XRPC
methods asked, in order) and `records`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
from typing import Any

import grapheme
from aiohttp import web

from tests.emulators.platform import PlatformEmulator, TokenBook, bearer, json_object
from tests.emulators.uploads import Received, received

TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
RECORD_KEY = re.compile(r"^[A-Za-z0-9._:~-]{1,512}$")
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
POST = "app.bsky.feed.post"
MAX_IMAGE_BYTES = 1_000_000
MAX_VIDEO_BYTES = 100_000_000
ERROR_NAMES = {500: "InternalServerError", 501: "MethodNotImplemented", 502: "UpstreamFailure",
               503: "NotEnoughResources", 504: "UpstreamTimeout"}


def _xrpc_error(status: int, error: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status,
                             headers=headers)


def _invalid(message: str) -> web.Response:
    return _xrpc_error(400, "InvalidRequest", message)


def _cid(value: Any) -> str:
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")


def _post_problem(record: Any) -> str | None:
    """What the post lexicon refuses in a record, in the PDS's words, or None."""
    if not isinstance(record, dict):
        return "Input/record must be an object"
    prefix = f"Invalid {POST} record: "
    if record.get("$type") != POST:
        return f"Invalid $type: expected {POST}, got {record.get('$type')}"
    for name in ("text", "createdAt"):
        if name not in record:
            return f'{prefix}Record must have the property "{name}"'
    text = record["text"]
    if not isinstance(text, str):
        return f"{prefix}Record/text must be a string"
    if len(text.encode("utf-8")) > 3000:
        return f"{prefix}Record/text must not be longer than 3000 characters"
    if grapheme.length(text) > 300:
        return f"{prefix}Record/text must not be longer than 300 graphemes"
    if not isinstance(record["createdAt"], str) or not DATETIME.match(record["createdAt"]):
        return f"{prefix}Record/createdAt must be an valid atproto datetime"
    langs = record.get("langs", [])
    if not isinstance(langs, list) or len(langs) > 3 or not all(
            isinstance(lang, str) for lang in langs):
        return f"{prefix}Record/langs must be an array of at most 3 language tags"
    facets = record.get("facets", [])
    if not isinstance(facets, list):
        return f"{prefix}Record/facets must be an array"
    for n, facet in enumerate(facets):
        index = facet.get("index") if isinstance(facet, dict) else None
        features = facet.get("features") if isinstance(facet, dict) else None
        if not isinstance(index, dict) or not all(
                isinstance(index.get(k), int) and index[k] >= 0
                for k in ("byteStart", "byteEnd")):
            return f"{prefix}Record/facets/{n}/index must have integer byteStart and byteEnd"
        if not isinstance(features, list) or not all(
                isinstance(f, dict) and isinstance(f.get("$type"), str) for f in features):
            return f"{prefix}Record/facets/{n}/features must be an array of typed objects"
    return None


def _embed_problem(embed: Any, blobs: dict[str, Received]) -> str | None:
    """What the embed lexicons and the PDS's blob checks refuse, or None."""
    prefix = f"Invalid {POST} record: Record/embed"
    if not isinstance(embed, dict):
        return f"{prefix} must be an object"
    kind = embed.get("$type")
    if kind == "app.bsky.embed.images":
        images = embed.get("images")
        if not isinstance(images, list) or not 1 <= len(images) <= 4:
            return f"{prefix}/images must be an array of 1 to 4 images"
        for n, image in enumerate(images):
            if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                return f'{prefix}/images/{n} must have the property "alt"'
            ratio = image.get("aspectRatio")
            if ratio is not None and not (isinstance(ratio, dict) and all(
                    isinstance(ratio.get(k), int) and ratio[k] >= 1 for k in ("width", "height"))):
                return f"{prefix}/images/{n}/aspectRatio must have positive width and height"
            problem = _blob_problem(image.get("image"), blobs, f"{prefix}/images/{n}/image",
                                    "image/", MAX_IMAGE_BYTES)
            if problem:
                return problem
        return None
    if kind == "app.bsky.embed.video":
        return _blob_problem(embed.get("video"), blobs, f"{prefix}/video", "video/mp4",
                             MAX_VIDEO_BYTES)
    return f"{prefix} has an unknown $type: {kind}"


def _blob_problem(blob: Any, blobs: dict[str, Received], where: str, accept: str,
                  max_size: int) -> str | None:
    if not isinstance(blob, dict) or blob.get("$type") != "blob" or not isinstance(
            blob.get("ref"), dict):
        return f"{where} should be a blob ref"
    cid = blob["ref"].get("$link")
    stored = blobs.get(cid) if isinstance(cid, str) else None
    if stored is None:
        return f"Could not find blob: {cid}"
    if blob.get("mimeType") != stored.content_type or blob.get("size") != stored.size:
        return f"{where} does not match the uploaded blob {cid}"
    if not stored.content_type.startswith(accept):
        return f"{where} has an unaccepted MIME type: {stored.content_type}"
    if stored.size > max_size:
        return f"{where} is too big: {stored.size} bytes, at most {max_size}"
    return None


def _reply_problem(reply: Any, records: dict[tuple[str, str, str], dict[str, Any]]) -> str | None:
    prefix = f"Invalid {POST} record: Record/reply"
    if not isinstance(reply, dict):
        return f"{prefix} must be an object"
    known = {(r["uri"], r["cid"]) for r in records.values()}
    for name in ("root", "parent"):
        ref = reply.get(name)
        if not isinstance(ref, dict) or not all(isinstance(ref.get(k), str)
                                                for k in ("uri", "cid")):
            return f'{prefix} must have the property "{name}" with uri and cid'
        if (ref["uri"], ref["cid"]) not in known:
            return f"{prefix}/{name} names no post of this repo: {ref['uri']}"
    return None


class BlueskyEmulator(PlatformEmulator):
    platform = "bluesky"
    client_max_size = MAX_VIDEO_BYTES + 1024 * 1024

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenBook(access_ttl=7200.0, rotate=True)
        self.handle = "herald-test.bsky.social"
        self.did = "did:plc:heraldtest7bqkx4vnmzgc2ur"
        self.email = "herald-test@example.com"
        self.app_password = "hrld-7tq2-m4xv-k9zp"
        #: (repo DID, collection, rkey) -> {"uri", "cid", "value"}
        self.records: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        #: The PDS's blob upload limit (bsky.social takes video blobs up to 100 MB).
        self.blob_limit = MAX_VIDEO_BYTES
        #: cid -> the blob received
        self.blobs: dict[str, Received] = {}

    # --- the platform's own answers ---------------------------------------------------------

    def rate_limited(self) -> web.Response:
        reset = math.ceil(time.time() + self.faults.retry_after)
        return _xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", **{
            "RateLimit-Limit": "5000", "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset), "RateLimit-Policy": "5000;w=3600"})

    def server_error(self, status: int) -> web.Response:
        name = ERROR_NAMES.get(status, "InternalServerError")
        return _xrpc_error(status, name, re.sub(r"(?<!^)(?=[A-Z])", " ", name))

    def token_expired(self) -> web.Response:
        return _xrpc_error(400, "ExpiredToken", "Token has expired")

    def account(self) -> dict[str, Any]:
        grant = self.tokens.issue(self.did)
        return {"platform": "bluesky", "name": "bluesky-test",
                "config": {"api_base": self.base_url, "did": self.did, "handle": self.handle},
                "credentials": {"identifier": self.handle, "app_password": self.app_password,
                                "access_jwt": grant.access_token,
                                "refresh_jwt": grant.refresh_token, "did": self.did}}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "calls": self.calls,
                "records": list(self.records.values()),
                "blobs": [b.state() for b in self.blobs.values()]}

    # --- routes -----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/xrpc/com.atproto.server.createSession", self._create_session)
        app.router.add_post("/xrpc/com.atproto.server.refreshSession", self._refresh_session)
        app.router.add_post("/xrpc/com.atproto.repo.createRecord", self._create_record)
        app.router.add_get("/xrpc/com.atproto.repo.getRecord", self._get_record)
        app.router.add_post("/xrpc/com.atproto.repo.uploadBlob", self._upload_blob)

    def _session_body(self, access: str, refresh: str | None) -> dict[str, Any]:
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.handle,
                "did": self.did, "email": self.email, "emailConfirmed": True, "active": True}

    async def _create_session(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("createSession")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        body = await json_object(request)
        if body is None:
            return _invalid("Request body must be a JSON object")
        for name in ("identifier", "password"):
            if not isinstance(body.get(name), str):
                return _invalid(f'Input must have the property "{name}"')
        known = body["identifier"].lower() in (self.handle, self.did, self.email)
        if self.tokens.refusing or not known or body["password"] != self.app_password:
            return _xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        grant = self.tokens.issue(self.did)
        return web.json_response(self._session_body(grant.access_token, grant.refresh_token))

    async def _refresh_session(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("refreshSession")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        token = bearer(request)
        if token is None:
            return _xrpc_error(401, "AuthMissing", "Authentication Required")
        grant = self.tokens.refresh(token)
        if grant is None:
            return _xrpc_error(400, "ExpiredToken", "Token has been revoked")
        return web.json_response(self._session_body(grant.access_token, grant.refresh_token))

    def _authorized(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        grant, state = self.bearer_grant(request)
        if state == "missing":
            return None, _xrpc_error(401, "AuthMissing", "Authentication Required")
        if state == "expired":
            return None, self.token_expired()
        if grant is None:
            return None, _xrpc_error(400, "InvalidToken", "Token could not be verified")
        return grant.subject, None

    async def _create_record(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("createRecord")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        did, refusal = self._authorized(request)
        if refusal is not None or did is None:
            return refusal or _xrpc_error(401, "AuthMissing", "Authentication Required")
        body = await json_object(request)
        if body is None:
            return _invalid("Request body must be a JSON object")
        for name in ("repo", "collection", "record"):
            if name not in body:
                return _invalid(f'Input must have the property "{name}"')
        if body["repo"] not in (self.did, self.handle):
            return _invalid(f"Could not find repo: {body['repo']}")
        if did != self.did:
            return _xrpc_error(401, "AuthenticationRequired", "Authentication Required")
        if body["collection"] != POST:
            return _invalid(f"This PDS emulator only knows {POST}")
        rkey = body.get("rkey")
        if rkey is None:
            rkey = self._now_tid()
        if not isinstance(rkey, str) or not RECORD_KEY.match(rkey) or rkey in (".", ".."):
            return _invalid(f"Invalid record key: {rkey}")
        if not TID.match(rkey):
            return _invalid(f"Invalid record key for {POST}: Invalid TID")
        problem = _post_problem(body["record"])
        record = body["record"]
        if problem is None and "embed" in record:
            problem = _embed_problem(record["embed"], self.blobs)
        if problem is None and "reply" in record:
            problem = _reply_problem(record["reply"], self.records)
        if problem is not None:
            return _invalid(problem)
        key = (self.did, POST, rkey)
        if key in self.records:
            # The repository tree throws on a second value under one key; the PDS hides the
            # cause of a 500.
            return self.server_error(500)
        uri = f"at://{self.did}/{POST}/{rkey}"
        cid = _cid(body["record"])
        self.records[key] = {"uri": uri, "cid": cid, "value": body["record"]}
        self.record(body["record"]["text"], id=uri, rkey=rkey, repo=self.did, cid=cid,
                    facets=body["record"].get("facets", []),
                    langs=body["record"].get("langs", []),
                    created_at=body["record"]["createdAt"],
                    embed=record.get("embed"), reply=record.get("reply"))
        return self.answer_lost(request, web.json_response({
            "uri": uri, "cid": cid, "commit": {"cid": _cid(uri), "rev": self._now_tid()},
            "validationStatus": "valid"}))

    async def _upload_blob(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("uploadBlob")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        did, refusal = self._authorized(request)
        if refusal is not None or did is None:
            return refusal or _xrpc_error(401, "AuthMissing", "Authentication Required")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if not content_type or content_type == "*/*":
            return _invalid("Request encoding (Content-Type) required but not provided")
        data = await request.read()
        if len(data) > self.blob_limit:
            return _xrpc_error(413, "PayloadTooLarge", "request entity too large")
        cid = "bafkrei" + base64.b32encode(hashlib.sha256(data).digest()).decode().lower(
            ).rstrip("=")
        self.blobs[cid] = received(cid, did, content_type, data)
        return self.answer_lost(request, web.json_response({"blob": {
            "$type": "blob", "ref": {"$link": cid}, "mimeType": content_type,
            "size": len(data)}}))

    async def _get_record(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("getRecord")
        refused = await self.guard(request)
        if refused is not None:
            return refused
        for name in ("repo", "collection", "rkey"):
            if name not in request.query:
                return _invalid(f'Error: Params must have the property "{name}"')
        repo = request.query["repo"]
        did = self.did if repo in (self.did, self.handle) else repo
        key = (did, request.query["collection"], request.query["rkey"])
        found = self.records.get(key)
        if found is None:
            return _xrpc_error(400, "RecordNotFound",
                               f"Could not locate record: at://{did}/{key[1]}/{key[2]}")
        return web.json_response(found)

    @staticmethod
    def _now_tid() -> str:
        value = (int(time.time() * 1_000_000) << 10) | 1
        alphabet = "234567abcdefghijklmnopqrstuvwxyz"
        return "".join(alphabet[(value >> (5 * (12 - i))) & 31] for i in range(13))


EMULATOR = BlueskyEmulator
