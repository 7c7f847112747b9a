"""Public media links: temporary URLs a provider fetches its inputs from (Turbotext).

A link is a `media_objects` row with an unguessable id (uuid4) and
`expires_at = min(job.expires_at, created_at + T_public_link_ttl)`, where T_public_link_ttl is the
live T_sync_response (docs/ARCHITECTURE.md "TTLs"). `GET /public/media/{id}` serves it until then; after expiry, or
once its job is finalized, it answers 410. The worker closes a job's links before finalizing it,
and the sweeper closes whatever a dead process left open.

A link either owns its file (a copy under <media_root>/public/, e.g. the upright photo; deleted
when the link closes) or borrows one (a template's file; left alone).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

from photoslot import media
from photoslot import settings as live_settings
from photoslot.errors import NotFound, PhotoslotError

# Closed rows are kept this long so a late fetch gets 410 rather than 404.
KEEP_CLOSED = dt.timedelta(hours=24)


class Gone(PhotoslotError):
    code = "gone"
    http_status = 410
    exit_code = 1


def public_url(cfg, media_id, mime: str | None = None) -> str:
    """The link, ending in the file's extension: Turbotext documents its input URLs as "format: jpg,
    png, jpeg" and may judge a link by its ending. The bare id is served too."""
    ext = media.MIME_EXT.get(mime or "")
    return f"{cfg.public_base_url()}/public/media/{media_id}" + (f".{ext}" if ext else "")


async def register(ctx, *, data: bytes | None = None, path=None, mime: str | None = None, job_id=None,
                   kind: str = "upload") -> dict:
    """A new public link to `data` (copied under public/) or to an existing file under the media root.

    Returns {"id", "public_url", "expires_at"}. Bytes are checked like an upload (413/415).
    """
    now = ctx.clock.now()
    live = await live_settings.load(ctx.db, ctx.cfg)
    expires_at = now + dt.timedelta(seconds=live.sync_response_seconds)
    if job_id is not None:
        job = await ctx.db.fetchone("media_job_deadline", job_id=job_id)
        if job is None:
            raise NotFound(f"no job {job_id}", {"job_id": str(job_id)})
        expires_at = min(expires_at, job["expires_at"])
    media_id = uuid.uuid4()
    if data is not None:
        sniffed = await asyncio.to_thread(media.check_image_bytes, data, media.max_upload_bytes(ctx.cfg), "media")
        mime = mime or sniffed
        file_path = ctx.media.public / f"{media_id}.{media.MIME_EXT.get(mime, 'bin')}"
        await asyncio.to_thread(ctx.media.write, file_path, data)
        owns, size = True, len(data)
    elif path is not None:
        file_path = ctx.media.inside(path)
        if mime is None:
            mime = media.sniff_mime(await asyncio.to_thread(_head, file_path))
        if mime is None:
            raise media.UnsupportedMedia("media is not a JPEG, PNG or WebP image")
        owns, size = False, (await asyncio.to_thread(file_path.stat)).st_size
    else:
        raise ValueError("register() needs data or path")
    try:
        row = await ctx.db.fetchone("media_object_insert", id=media_id, job_id=job_id, kind=kind,
                                    file_path=str(file_path), owns_file=owns, mime=mime, size_bytes=size,
                                    expires_at=expires_at, now=now)
    except BaseException:
        if owns:
            ctx.media.remove(file_path)
        raise
    return {"id": str(row["id"]), "public_url": public_url(ctx.cfg, row["id"], mime), "expires_at": row["expires_at"],
            "mime": mime, "size_bytes": size}


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(16)


async def resolve(ctx, media_id: str) -> dict:
    """The live link's row; NotFound (404) for an unknown id (or an ending that is not its file's
    type), Gone (410) once it is closed. `media_id` is the id, alone or with its extension."""
    stem, dot, ext = str(media_id).partition(".")
    try:
        mid = uuid.UUID(stem)
    except ValueError:
        raise NotFound("no such media") from None
    row = await ctx.db.fetchone("media_object_get", media_id=mid)
    if row is None or (dot and ext != media.MIME_EXT.get(row["mime"])):
        raise NotFound("no such media")
    if row["expired_at"] is not None or row["expires_at"] <= ctx.clock.now() or row["job_finalized"]:
        raise Gone("this link has expired")
    return row


async def read(ctx, media_id: str) -> tuple[bytes, str]:
    """(bytes, mime) of a live link; Gone when its file is gone too."""
    row = await resolve(ctx, media_id)
    try:
        data = await asyncio.to_thread(Path(row["file_path"]).read_bytes)
    except OSError:
        raise Gone("this link's file no longer exists") from None
    return data, row["mime"]


def _remove_owned(ctx, rows: list[dict]) -> int:
    for r in rows:
        if r["owns_file"]:
            ctx.media.remove(r["file_path"])
    return len(rows)


async def expire_for_job(ctx, job_id) -> int:
    """Close every open link of a job (called before the job is finalized); returns how many."""
    rows = await ctx.db.fetchall("media_objects_expire_for_job", job_id=job_id, now=ctx.clock.now())
    return _remove_owned(ctx, rows)


async def expire(ctx, media_id) -> int:
    """Close one link now (a link with no job: nothing else would close it before its TTL)."""
    rows = await ctx.db.fetchall("media_object_expire", media_id=uuid.UUID(str(media_id)), now=ctx.clock.now())
    return _remove_owned(ctx, rows)


async def expire_all(ctx) -> int:
    """Close every open link (admin cache purge)."""
    rows = await ctx.db.fetchall("media_objects_expire_all", now=ctx.clock.now())
    return _remove_owned(ctx, rows)


async def sweep(ctx) -> dict:
    """Sweeper pass: close links past their TTL or whose job ended; drop long-closed rows;
    remove files under public/ that no open link owns (a crash between write and insert)."""
    now = ctx.clock.now()
    closed = _remove_owned(ctx, await ctx.db.fetchall("media_objects_expire_due", now=now))
    pruned = await ctx.db.execute("media_objects_prune", cutoff=now - KEEP_CLOSED)
    open_paths = {r["file_path"] for r in await ctx.db.fetchall("media_objects_open_paths")}
    orphans = 0
    if ctx.media.public.exists():
        # A young file may be between its write and its INSERT. Age is read on the injected clock,
        # like every other TTL, so a test moving the clock moves this too.
        cutoff = now.timestamp() - float(ctx.cfg.raw.get("sweeper", {}).get("orphan_grace_seconds", 120))
        for p in ctx.media.public.iterdir():
            try:
                if str(p) not in open_paths and p.stat().st_mtime < cutoff:
                    p.unlink()
                    orphans += 1
            except FileNotFoundError:
                continue
    return {"links_closed": closed, "link_rows_pruned": pruned, "public_orphans_removed": orphans}
