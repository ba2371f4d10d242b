"""`GET /public/media/{id}?expires=&signature=`: a stored item's bytes for a platform that
fetches media itself (Instagram, TikTok's `PULL_FROM_URL`), outside `/api/v1` and without the
bearer token: the signature is the credential (shared.media.signing). Any signature problem,
an expired one included, is the same 403, and says nothing of whether the id exists."""

from __future__ import annotations

from aiohttp import web

from shared.http import RUNTIME, error_body
from shared.media import serving
from shared.media.signing import PUBLIC_PATH


async def public_media(request: web.Request) -> web.StreamResponse:
    rt = request.config_dict[RUNTIME]
    media_id = request.match_info["id"]
    expires, signature = request.query.get("expires", ""), request.query.get("signature", "")
    if not (expires.isdigit() and len(expires) <= 12 and signature
            and rt.media.url_valid(media_id, int(expires), signature)):
        return error_body(403, "forbidden", "the URL's signature is missing, wrong or expired")
    record = await rt.media.get(media_id)
    if record is None:
        return error_body(404, "not_found", "the media item no longer exists")
    return await serving.send(request, rt.media, record)


def add_public_routes(app: web.Application) -> None:
    app.router.add_get(PUBLIC_PATH, public_media)
