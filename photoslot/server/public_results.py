"""Public result links (no auth): `GET /public/results/{job_id}` and its gallery thumbnail.

200 with `Content-Disposition: attachment` until `result_expires_at` (read from the injected
clock), 410 Gone after it — or once the sweeper removed the file —, 404 for an id that never had a
result. The job id is a random UUID, which is what makes the link private enough to share.
"""
from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

from aiohttp import web
from PIL import Image, ImageOps

from photoslot import jobs
from photoslot.media import MIME_EXT
from photoslot.server.toolkit import endpoint, error_answer

routes = web.RouteTableDef()

THUMBNAIL_PX = 160


async def _result(request: web.Request, ctx):
    """(job, bytes) or an error response."""
    raw = request.match_info["job_id"]
    try:
        job = await jobs.get(ctx.db, uuid.UUID(raw))
    except ValueError:
        job = None
    if job is None or job["status"] != "succeeded" or job["result_expires_at"] is None:
        return None, error_answer(404, "not_found", "no result with this id")
    if ctx.clock.now() >= job["result_expires_at"] or job.get("result_removed_at") or not job["result_file_path"]:
        return None, error_answer(410, "gone", "this result has expired and was deleted")
    try:
        data = await asyncio.to_thread(Path(job["result_file_path"]).read_bytes)
    except OSError:  # removed by the sweeper a moment ago
        return None, error_answer(410, "gone", "this result has expired and was deleted")
    return (job, data), None


def _private_cache(job, now) -> str:
    left = int((job["result_expires_at"] - now).total_seconds())
    return f"private, max-age={max(0, min(left, 3600))}"


@routes.get("/public/results/{job_id}")
@endpoint(None)
async def download(request: web.Request, ctx, _) -> web.StreamResponse:
    found, error = await _result(request, ctx)
    if error is not None:
        return error
    job, data = found
    ext = MIME_EXT.get(job["result_mime_type"], "bin")
    return web.Response(body=data, content_type=job["result_mime_type"], headers={
        "Content-Disposition": f'attachment; filename="{job["id"]}.{ext}"',
        "Cache-Control": _private_cache(job, ctx.clock.now()),
        "X-Job-Id": str(job["id"]),
    })


def make_thumbnail(data: bytes, size: int = THUMBNAIL_PX) -> bytes:
    """A JPEG no larger than size × size, upright, aspect kept."""
    with Image.open(io.BytesIO(data)) as im:
        im = ImageOps.exif_transpose(im)
        im.thumbnail((size, size))
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
    return out.getvalue()


@routes.get("/public/results/{job_id}/thumbnail")
@endpoint(None)
async def thumbnail(request: web.Request, ctx, _) -> web.StreamResponse:
    found, error = await _result(request, ctx)
    if error is not None:
        return error
    job, data = found
    try:
        thumb = await asyncio.to_thread(make_thumbnail, data)
    except (OSError, ValueError, Image.DecompressionBombError):
        return error_answer(500, "internal_error", "the result cannot be thumbnailed")
    return web.Response(body=thumb, content_type="image/jpeg", headers={
        "Content-Disposition": f'inline; filename="{job["id"]}-thumb.jpg"',
        "Cache-Control": _private_cache(job, ctx.clock.now()),
    })
