"""Public result links (no auth): `GET /public/results/{job_id}` and its gallery thumbnail.

200 with `Content-Disposition: attachment` until `result_expires_at` (read from the injected
clock), 410 Gone after it — or once the sweeper removed the file —, 404 for an id that never had a
result. The job id is a random UUID, which is what makes the link private enough to share. The
thumbnail is a file beside the result (`results/<job>.thumb.jpg`), made on its first request.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from aiohttp import web
from PIL import Image

from photoslot import jobs, media
from photoslot.media import MIME_EXT
from photoslot.server.toolkit import endpoint, error_answer

log = logging.getLogger("photoslot.public")
routes = web.RouteTableDef()


async def _live_result(request: web.Request, ctx):
    """(job, None) for a result that may still be served, or (None, the error response)."""
    raw = request.match_info["job_id"]
    try:
        job = await jobs.get(ctx.db, uuid.UUID(raw))
    except ValueError:
        job = None
    if job is None or job["status"] != "succeeded" or job["result_expires_at"] is None:
        return None, error_answer(404, "not_found", "no result with this id")
    if ctx.clock.now() >= job["result_expires_at"] or job.get("result_removed_at") or not job["result_file_path"]:
        return None, _gone()
    return job, None


def _gone() -> web.Response:
    return error_answer(410, "gone", "this result has expired and was deleted")


def _private_cache(job, now) -> str:
    left = int((job["result_expires_at"] - now).total_seconds())
    return f"private, max-age={max(0, min(left, 3600))}"


@routes.get("/public/results/{job_id}")
@endpoint(None)
async def download(request: web.Request, ctx, _) -> web.StreamResponse:
    job, error = await _live_result(request, ctx)
    if error is not None:
        return error
    try:
        data = await asyncio.to_thread(Path(job["result_file_path"]).read_bytes)
    except OSError:  # removed by the sweeper a moment ago
        return _gone()
    ext = MIME_EXT.get(job["result_mime_type"], "bin")
    return web.Response(body=data, content_type=job["result_mime_type"], headers={
        "Content-Disposition": f'attachment; filename="{job["id"]}.{ext}"',
        "Cache-Control": _private_cache(job, ctx.clock.now()),
        "X-Job-Id": str(job["id"]),
    })


@routes.get("/public/results/{job_id}/thumbnail")
@endpoint(None)
async def thumbnail(request: web.Request, ctx, _) -> web.StreamResponse:
    """The stored thumbnail, made once on the first request (media.thumbnail: one decode however
    many ask at once) and removed with its result."""
    job, error = await _live_result(request, ctx)
    if error is not None:
        return error
    result = job["result_file_path"]
    try:
        path = await media.thumbnail(result, ctx.media.thumbnail_path(result))
        thumb = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:  # the sweeper removed the result (and its thumbnail) a moment ago
        return _gone()
    except (OSError, ValueError, Image.DecompressionBombError):
        log.exception("thumbnail of %s failed", job["id"])
        return error_answer(500, "internal_error", "the result cannot be thumbnailed")
    return web.Response(body=thumb, content_type="image/jpeg", headers={
        "Content-Disposition": f'inline; filename="{job["id"]}-thumb.jpg"',
        "Cache-Control": _private_cache(job, ctx.clock.now()),
    })
