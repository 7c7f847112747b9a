"""GET /public/media/{id}.{ext} (or the bare id) — temporary files a provider fetches (no auth; the id is the
secret; the extension is the file's type, as Turbotext wants its input links to end)."""
from __future__ import annotations

from aiohttp import web

from photoslot import public_media
from photoslot.db import DatabaseUnavailable
from photoslot.errors import PhotoslotError
from photoslot.server.toolkit import endpoint, error_answer

routes = web.RouteTableDef()


@routes.get("/public/media/{media_id}")
@endpoint(None)
async def get_media(request: web.Request, ctx, _) -> web.Response:
    try:
        data, mime = await public_media.read(ctx, request.match_info["media_id"])
    except PhotoslotError as exc:
        return error_answer(exc.http_status, exc.code, exc.message)
    except DatabaseUnavailable:
        return error_answer(503, "database_unavailable", "retry shortly", headers={"Retry-After": "2"})
    # Never cached: the link must stop working at its expiry, not at some proxy's.
    return web.Response(body=data, content_type=mime, headers={"Cache-Control": "no-store"})
