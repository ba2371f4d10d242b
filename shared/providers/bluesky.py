"""The `bluesky` platform: an app password traded for a rotating session, and each post a
record whose key is derived from the job id.

Bluesky has no idempotency key, but the client may choose a record's key (rkey), and a PDS
refuses a second record under a key that exists. The key of a job's post is a TID computed
from the job id (`record_key`), so a retry of the same job cannot create a second post: its
`createRecord` is refused, and `getRecord` under that key finds the first one. The same
lookup settles a job whose outcome is unknown.

Sessions: `createSession` with the app password gives an access JWT (about 2 h) and a refresh
JWT; `refreshSession` rotates both. When the refresh JWT is refused, the app password makes a
new session; when that is refused too, the account must be reconnected (AuthRevoked). The
access token's expiry is not tracked: the PDS answers `400 ExpiredToken`, which is
AuthExpired.

Media: each file is streamed to `uploadBlob` as the raw body and the blob the PDS answers is
saved in the job's checkpoints before anything else; images become an `app.bsky.embed.images`
embed (alt text, aspect ratio), a video an `app.bsky.embed.video` embed (the documented
"simple method": the video service processes it once the post is in the firehose). A thread is
a chain of posts, each `reply` naming the first post (root) and the one before (parent) by uri
and cid, each under its own record key derived from the job id and its place in the thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field

from shared.models import Content, Strict
from shared.providers.base import (
    HTTP_BASE,
    AuthExpired,
    AuthRevoked,
    Budget,
    Connected,
    HttpBase,
    MediaFile,
    MediaInfo,
    OAuthApp,
    Part,
    PartsInfo,
    Permanent,
    Problems,
    Provider,
    Published,
    PublishRequest,
    RateLimited,
    TextLimit,
    Transient,
    credential,
    part_text,
    publish_parts,
    secrets_of,
    text_parts,
    uploaded,
)
from shared.providers.text import graphemes, urls
from shared.providers.wire import (
    Answer,
    Streamed,
    answer_error,
    at_epoch,
    bearer,
    call,
    parse_retry_after,
    retry_later,
    rfc3339_utc,
)

DEFAULT_API_BASE = "https://bsky.social"
APP_URL = "https://bsky.app"
COLLECTION = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
#: The post lexicon's `maxLength` of `text`, in UTF-8 bytes.
MAX_TEXT_BYTES = 3000
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
#: Answers that mean the access JWT is not accepted; a new session may fix them.
SESSION_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthMissing",
                            "AuthenticationRequired"})
#: What `call` and the error messages are scrubbed of.
SECRET_KEYS = ("app_password", "access_jwt", "refresh_jwt")
#: `app.bsky.embed.images`: at most 4 images, each blob at most 1,000,000 bytes of `image/*`.
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000
#: `app.bsky.embed.video`: one `video/mp4` blob of at most 100,000,000 bytes; Bluesky's apps
#: take up to 3 minutes.
VIDEO_TYPE = "video/mp4"
MAX_VIDEO_BYTES = 100_000_000
MAX_VIDEO_SECONDS = 180.0
#: Bytes per read from the media store while a blob streams to the PDS.
UPLOAD_CHUNK = 256 * 1024
UPLOAD_TIMEOUT_SECONDS = 600.0


class BlueskyConfig(Strict):
    api_base: Annotated[HttpBase, Field(
        description="the account's PDS or entryway (XRPC under /xrpc)")] = DEFAULT_API_BASE
    did: Annotated[str, Field(
        pattern=r"^did:[a-z]+:[a-zA-Z0-9._:%-]+$",
        description="the account's DID, filled in by Herald when it connects")] | None = None
    handle: Annotated[str, Field(
        min_length=1, max_length=253,
        description="the account's handle, filled in by Herald when it connects")] | None = None
    langs: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")]],
                     Field(max_length=3, description="BCP-47 languages of the posts' text "
                                                     "(the record's `langs`)")] | None = None


class BlueskyCredentials(Strict):
    identifier: Annotated[str, Field(
        min_length=1, description="the account's handle, DID or email")]
    app_password: Annotated[str, Field(
        min_length=1, description="an app password (Settings → Privacy and security)")]
    access_jwt: Annotated[str, Field(
        min_length=1, description="the session's access token, kept by Herald")] | None = None
    refresh_jwt: Annotated[str, Field(
        min_length=1, description="the session's refresh token, kept by Herald")] | None = None
    did: Annotated[str, Field(
        pattern=r"^did:[a-z]+:[a-zA-Z0-9._:%-]+$",
        description="the session's DID, kept by Herald")] | None = None


def tid(microseconds: int, clock_id: int) -> str:
    """The TID of a timestamp and a 10-bit clock id: 13 base32-sortable characters of
    `0 | 53-bit microseconds | 10-bit clock id`."""
    value = ((microseconds & ((1 << 53) - 1)) << 10) | (clock_id & 0x3FF)
    return "".join(TID_ALPHABET[(value >> (5 * (12 - i))) & 31] for i in range(13))


def record_key(job_id: str, part: int = 0) -> str:
    """The rkey of a job's post (part 0) or of its thread's nth reply (part n), a valid TID
    computed from the job's ObjectId (4-byte seconds, 5 random bytes fixed per process, 3-byte
    counter): microseconds = seconds * 10^6 + counter mod 10^6, clock id = the low 10 bits of
    the random part plus `part` (a thread has at most 50 parts, far below 1024, so two parts
    of one job never share a key, and parts of two jobs from one process in one second differ
    in their counter).

    Why two jobs do not share a key (only keys in one account's repo can collide): ids made by
    one process in the same second differ in their counter, and counters 10^6 apart would
    take a million ids in one second from one process; ids from different processes in the
    same second collide only when, besides that, their random parts agree in 10 bits
    (a chance of about 1 in 10^9 per pair). A key taken by a record from another client (the
    app's own keys are random-clocked TIDs of the current time) is as unlikely, and is
    then found by `getRecord` instead of posting: that is the one misreading, never a double
    post.
    """
    if not OBJECT_ID.match(job_id):
        raise Permanent(f"bluesky: job id {job_id!r} is not an ObjectId; no record key")
    raw = bytes.fromhex(job_id)
    seconds = int.from_bytes(raw[:4], "big")
    random = int.from_bytes(raw[4:9], "big")
    counter = int.from_bytes(raw[9:], "big")
    return tid(seconds * 1_000_000 + counter % 1_000_000, (random + part) & 0x3FF)


def link_facets(text: str) -> list[dict[str, Any]]:
    """`app.bsky.richtext.facet#link` facets for the URLs in text (twitter-text's extractor,
    which checks top-level domains), indexed in UTF-8 bytes as the lexicon requires."""
    facets = []
    for start, end, url in urls(text):
        uri = url if re.match(r"^https?://", url, re.IGNORECASE) else f"https://{url}"
        facets.append({
            "index": {"byteStart": len(text[:start].encode("utf-8")),
                      "byteEnd": len(text[:end].encode("utf-8"))},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}],
        })
    return facets


def post_record(text: str, created_at: datetime, langs: list[str] | None = None
                ) -> dict[str, Any]:
    record: dict[str, Any] = {"$type": COLLECTION, "text": text,
                              "createdAt": rfc3339_utc(created_at)}
    facets = link_facets(text)
    if facets:
        record["facets"] = facets
    if langs:
        record["langs"] = list(langs)
    return record


def media_problems(where: str, media: list[MediaInfo]) -> Problems:
    """One post's media against the embeds a post takes: up to 4 images or one video (a post
    has one embed), each within its lexicon's size and type."""
    problems: Problems = []
    kinds = [(info.content_type or "").split("/")[0] for info in media]
    if "video" in kinds and len(media) > 1:
        problems.append((where, "bluesky: a video must be a post's only media"))
    elif len(media) > MAX_IMAGES:
        problems.append((where, f"bluesky: {len(media)} images, at most {MAX_IMAGES}"))
    for n, info in enumerate(media):
        at, kind = f"{where}.{n}", kinds[n]
        if info.content_type is None:
            continue
        if kind == "image":
            if info.size is not None and info.size > MAX_IMAGE_BYTES:
                problems.append((at, f"bluesky: {info.size} bytes, at most {MAX_IMAGE_BYTES} "
                                     f"for an image"))
        elif info.content_type == VIDEO_TYPE:
            if info.size is not None and info.size > MAX_VIDEO_BYTES:
                problems.append((at, f"bluesky: {info.size} bytes, at most {MAX_VIDEO_BYTES} "
                                     f"for a video"))
            if info.duration_seconds is not None and info.duration_seconds > MAX_VIDEO_SECONDS:
                problems.append((at, f"bluesky: video of {info.duration_seconds:g} s, at most "
                                     f"{MAX_VIDEO_SECONDS:g} s"))
        else:
            problems.append((at, f"bluesky: {info.content_type} cannot be posted (images, "
                                 f"or {VIDEO_TYPE} video)"))
    return problems


def _aspect_ratio(file: MediaFile) -> dict[str, int] | None:
    width, height = file.info.width, file.info.height
    return {"width": width, "height": height} if width and height else None


def embed(files: Sequence[MediaFile], blobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The post's embed for its uploaded media: a video, or up to 4 images with alt text."""
    if not files:
        return None
    if (files[0].info.content_type or "").startswith("video/"):
        video: dict[str, Any] = {"$type": "app.bsky.embed.video", "video": blobs[0]}
        if files[0].alt:
            video["alt"] = files[0].alt
        ratio = _aspect_ratio(files[0])
        if ratio:
            video["aspectRatio"] = ratio
        return video
    images = []
    for file, blob in zip(files, blobs, strict=True):
        image: dict[str, Any] = {"image": blob, "alt": file.alt}
        ratio = _aspect_ratio(file)
        if ratio:
            image["aspectRatio"] = ratio
        images.append(image)
    return {"$type": "app.bsky.embed.images", "images": images}


def _strong_ref(part: Part) -> dict[str, str]:
    return {"uri": str(part["platform_post_id"]), "cid": str(part["cid"])}


def _base(config: dict[str, Any]) -> str:
    value = config.get("api_base") or DEFAULT_API_BASE
    if not isinstance(value, str) or not re.match(HTTP_BASE, value):
        raise Permanent("bluesky: config.api_base must be an http(s) URL")
    return value.rstrip("/")


def _xrpc(config: dict[str, Any], method: str) -> str:
    return f"{_base(config)}/xrpc/{method}"


def _error_name(answer: Answer) -> str:
    name = answer.object().get("error")
    return name if isinstance(name, str) else ""


def _rate_limited(answer: Answer, message: str) -> RateLimited:
    """The PDS names the reset as epoch seconds (`RateLimit-Reset`); its write and session
    limits are per account (DID or handle), so the whole account waits."""
    now = datetime.now(UTC)
    retry_at = at_epoch(answer.headers.get("RateLimit-Reset"), now) or parse_retry_after(
        answer.headers.get("Retry-After"), now)
    return retry_later(message, retry_at, scope="account")


def _error(answer: Answer, secrets: list[str]) -> Exception:
    """An authenticated call's refusal as the taxonomy."""
    message = answer_error("bluesky", answer, secrets)
    name = _error_name(answer)
    if answer.status == 429:
        return _rate_limited(answer, message)
    if answer.status >= 500:
        return Transient(message)
    if name == "AccountTakedown":
        return AuthRevoked(message)
    if name in SESSION_ERRORS or answer.status == 401:
        return AuthExpired(message)
    return Permanent(message)


def _session(answer: Answer) -> tuple[dict[str, str], str | None]:
    """(credentials of a createSession/refreshSession answer, the handle)."""
    document = answer.object()
    access, refresh, did = (document.get(k) for k in ("accessJwt", "refreshJwt", "did"))
    if not all(isinstance(v, str) and v for v in (access, refresh, did)):
        raise Transient("bluesky: the session answer lacks accessJwt, refreshJwt or did")
    handle = document.get("handle")
    return ({"access_jwt": str(access), "refresh_jwt": str(refresh), "did": str(did)},
            handle if isinstance(handle, str) else None)


def _published(uri: str) -> Published:
    """`at://<did>/app.bsky.feed.post/<rkey>` as the post id, and its bsky.app page."""
    match = re.match(r"^at://([^/]+)/[^/]+/([^/]+)$", uri)
    if match is None:
        return Published(platform_post_id=uri)
    return Published(platform_post_id=uri,
                     url=f"{APP_URL}/profile/{match.group(1)}/post/{match.group(2)}")


def _part(uri: str, cid: str) -> Part:
    """A published part as the `parts` checkpoint keeps it: a reply names it by uri and cid."""
    published = _published(uri)
    return {"platform_post_id": published.platform_post_id, "url": published.url, "cid": cid}


def _repo(request: PublishRequest) -> str:
    repo = (request.credentials.get("did") or request.config.get("did")
            or request.credentials.get("identifier"))
    if not isinstance(repo, str) or not repo:
        raise Permanent("bluesky: the account has neither a DID nor an identifier")
    return repo


class BlueskyProvider(Provider):
    platform = "bluesky"
    Config = BlueskyConfig
    Credentials = BlueskyCredentials
    connects_with = "credentials"
    honours_idempotency_key = False
    supports_lookup = True
    supports_threads = True
    supports_media = True
    #: The PDS's repo-write limit: 5,000 points per hour per account, a create being 3 points.
    #: (The daily 35,000 points, 11,666 creates, is left to the PDS's own 429.)
    default_budget = Budget(1_666, 3_600)

    # --- sessions ---------------------------------------------------------------------------

    async def _create_session(self, config: dict[str, Any], credentials: dict[str, Any]
                              ) -> tuple[dict[str, str], str | None]:
        identifier = credential(credentials, "identifier", "bluesky")
        password = credential(credentials, "app_password", "bluesky")
        secrets = secrets_of(credentials, keys=SECRET_KEYS)
        answer = await call(
            self.session, "POST", _xrpc(config, "com.atproto.server.createSession"),
            platform="bluesky", secrets=secrets,
            json={"identifier": identifier, "password": password},
        )
        if answer.ok:
            return _session(answer)
        message = answer_error("bluesky", answer, secrets)
        if answer.status == 429:
            raise _rate_limited(answer, message)
        if answer.status >= 500:
            raise Transient(message)
        # 401 AuthenticationRequired (wrong or revoked app password), AuthFactorTokenRequired,
        # AccountTakedown; 400 for an identifier the PDS does not know.
        raise AuthRevoked(message)

    async def connect(self, config: dict[str, Any], credentials: dict[str, Any]) -> Connected:
        """Trade the app password for a session; the DID and handle join the config."""
        session, handle = await self._create_session(config, credentials)
        linked = {"did": session["did"], **({"handle": handle} if handle else {})}
        return Connected(credentials={**credentials, **session}, config=linked)

    async def refresh(self, config: dict[str, Any], credentials: dict[str, Any],
                      app: OAuthApp | None) -> dict[str, Any]:
        """`refreshSession` with the refresh JWT (which rotates it); when the PDS refuses
        that JWT (expired, revoked, rotated away), a new session from the app password."""
        refresh_jwt = credentials.get("refresh_jwt")
        if isinstance(refresh_jwt, str) and refresh_jwt:
            secrets = secrets_of(credentials, keys=SECRET_KEYS)
            answer = await call(
                self.session, "POST", _xrpc(config, "com.atproto.server.refreshSession"),
                platform="bluesky", secrets=secrets, headers=bearer(refresh_jwt),
            )
            if answer.ok:
                return {**credentials, **_session(answer)[0]}
            message = answer_error("bluesky", answer, secrets)
            if answer.status == 429:
                raise _rate_limited(answer, message)
            if answer.status >= 500:
                raise Transient(message)
        return {**credentials, **(await self._create_session(config, credentials))[0]}

    # --- limits -----------------------------------------------------------------------------

    async def text_limit(self, config: dict[str, Any]) -> TextLimit:
        return TextLimit(MAX_GRAPHEMES, "graphemes")

    def measure(self, text: str) -> int:
        return graphemes(text)

    async def check_content(self, content: Content, config: dict[str, Any],
                            media: PartsInfo = ()) -> Problems:
        """Graphemes as the base check counts them, and the lexicon's byte cap, which a text
        of long emoji sequences meets first."""
        problems = await super().check_content(content, config, media)
        for where, text in text_parts(content):
            size = len(text.encode("utf-8"))
            if size > MAX_TEXT_BYTES:
                problems.append((where, f"bluesky: {size} bytes, at most {MAX_TEXT_BYTES}"))
        fields = ["content.media"] + [f"content.thread.{n}.media"
                                      for n in range(len(content.thread))]
        for part, where in enumerate(fields):
            if part < len(media):
                problems += media_problems(where, list(media[part]))
        return problems

    # --- publishing -------------------------------------------------------------------------

    async def publish(self, request: PublishRequest) -> Published:
        """The post and its thread (`publish_parts`), each part a `createRecord` under its own
        record key, its media uploaded once (`uploaded`) before it. A refusal that may mean the
        key is taken (the PDS answers a duplicate key with a 500) is checked with `getRecord`:
        a record there is this part from an earlier attempt whose answer was lost."""
        token = request.credentials.get("access_jwt")
        if not isinstance(token, str) or not token:
            raise AuthExpired("bluesky: no session yet")
        repo = _repo(request)
        secrets = secrets_of(request.credentials, keys=SECRET_KEYS)
        langs = request.config.get("langs")

        async def publish_part(n: int, earlier: list[Part]) -> Part:
            files = request.media_of(n)
            blobs = [json.loads(await uploaded(
                request, n, index, self._uploader(request.config, token, secrets, file)))
                for index, file in enumerate(files)]
            record = post_record(part_text(request.content, n), datetime.now(UTC),
                                 langs if isinstance(langs, list) else None)
            attached = embed(files, blobs)
            if attached is not None:
                record["embed"] = attached
            if earlier:
                record["reply"] = {"root": _strong_ref(earlier[0]),
                                   "parent": _strong_ref(earlier[-1])}
            return await self._create(request.config, repo, record_key(request.job_id, n),
                                      record, token, secrets)

        return await publish_parts(request, publish_part)

    def _uploader(self, config: dict[str, Any], token: str, secrets: list[str],
                  file: MediaFile) -> Callable[[], Awaitable[str]]:
        async def upload() -> str:
            """`uploadBlob`, the file streamed from the store as the raw body; the blob the PDS
            answers, as JSON text (what the checkpoint keeps and the embed names)."""
            size, content_type = file.info.size, file.info.content_type
            if size is None or content_type is None:
                raise Permanent(f"bluesky: media {file.id} has no known size and type")
            answer = await call(
                self.session, "POST", _xrpc(config, "com.atproto.repo.uploadBlob"),
                platform="bluesky", secrets=secrets, headers=bearer(token),
                data=Streamed(file.chunks(UPLOAD_CHUNK), size, content_type),
                timeout_seconds=UPLOAD_TIMEOUT_SECONDS)
            if not answer.ok:
                raise _error(answer, secrets)
            blob = answer.object().get("blob")
            if not isinstance(blob, dict) or not isinstance(blob.get("ref"), dict):
                raise Transient("bluesky: uploadBlob answered without a blob")
            return json.dumps(blob, sort_keys=True)
        return upload

    async def _create(self, config: dict[str, Any], repo: str, rkey: str,
                      record: dict[str, Any], token: str, secrets: list[str]) -> Part:
        answer = await call(
            self.session, "POST", _xrpc(config, "com.atproto.repo.createRecord"),
            platform="bluesky", secrets=secrets, headers=bearer(token),
            json={"repo": repo, "collection": COLLECTION, "rkey": rkey, "record": record},
        )
        if answer.ok:
            uri, cid = answer.object().get("uri"), answer.object().get("cid")
            if not isinstance(uri, str) or not isinstance(cid, str):
                raise Transient("bluesky: createRecord answered without a uri and cid")
            return _part(uri, cid)
        error = _error(answer, secrets)
        if isinstance(error, Transient | Permanent) and not isinstance(error, AuthRevoked):
            try:
                earlier = await self._get_post(config, repo, rkey, secrets)
            except (Transient, Permanent, RateLimited):
                raise error from None
            if earlier is not None:
                return earlier
        raise error

    async def _get_post(self, config: dict[str, Any], repo: str, rkey: str,
                        secrets: list[str]) -> Part | None:
        """`getRecord` (public): the post under the key, or None when there is none."""
        answer = await call(
            self.session, "GET", _xrpc(config, "com.atproto.repo.getRecord"),
            platform="bluesky", secrets=secrets,
            params={"repo": repo, "collection": COLLECTION, "rkey": rkey},
        )
        if answer.ok:
            uri, cid = answer.object().get("uri"), answer.object().get("cid")
            return _part(uri, cid) if isinstance(uri, str) and isinstance(cid, str) else None
        if _error_name(answer) == "RecordNotFound":
            return None
        raise _error(answer, secrets)

    async def lookup(self, request: PublishRequest, since: datetime) -> Published | None:
        """The job's post under its record key, whenever it was made; for a thread, only once
        its last reply is there too (a retry makes what is missing, under the same keys)."""
        repo, secrets = _repo(request), secrets_of(request.credentials, keys=SECRET_KEYS)
        last = len(request.content.thread)
        if last and await self._get_post(request.config, repo,
                                         record_key(request.job_id, last), secrets) is None:
            return None
        found = await self._get_post(request.config, repo, record_key(request.job_id), secrets)
        return _published(found["platform_post_id"]) if found is not None else None
