"""GET /public/media/{id} — temporary files a provider fetches (no auth; the id is the secret)."""
from __future__ import annotations

from aiohttp import web

from photoslot import public_media
from photoslot.db import DatabaseUnavailable
from photoslot.errors import PhotoslotError


def make_handler(ctx):
    async def get_media(request: web.Request) -> web.Response:
        try:
            data, mime = await public_media.read(ctx, request.match_info["media_id"])
        except PhotoslotError as exc:
            return web.json_response({"error": {"code": exc.code, "message": exc.message, "details": {}}},
                                     status=exc.http_status)
        except DatabaseUnavailable:
            return web.json_response({"error": {"code": "database_unavailable", "message": "retry shortly",
                                                "details": {}}}, status=503, headers={"Retry-After": "2"})
        # Never cached: the link must stop working at its expiry, not at some proxy's.
        return web.Response(body=data, content_type=mime, headers={"Cache-Control": "no-store"})

    return get_media
