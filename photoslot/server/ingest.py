"""POST /ingest/{slot_id} — the DSLR Remote Pro contract (DESIGN §5).

The whole answer (200 or an error) leaves within T_sync_response of the request's arrival. The
photo is streamed to uploads/ with the size cap enforced while reading; its type is decided from
its bytes. Every error path removes what it wrote.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from photoslot import SLOT_IDS, jobs, metrics, quotas
from photoslot import media as media_mod
from photoslot import settings as live_settings
from photoslot.db import DatabaseUnavailable
from photoslot.logs import event
from photoslot.outcomes import ingest_answer
from photoslot.passwords import CachedVerifier
from photoslot.server.lag import LagMonitor
from photoslot.providers import catalogue
from photoslot.slots import is_configured

log = logging.getLogger("photoslot.ingest")

FILE_FIELDS = ("fileToUpload", "file")
CHUNK = 256 * 1024
MAX_PARTS = 200
MAX_PASSWORD_BYTES = 1024
RETRY_AFTER_QUEUE_FULL = 5


class IngestError(Exception):
    def __init__(self, status: int, reason: str, details: str, *, retry_after: int | None = None,
                 unread_body: bool = False) -> None:
        super().__init__(details)
        self.status = status
        self.reason = reason
        self.details = details
        self.retry_after = retry_after
        self.unread_body = unread_body


@dataclass
class Upload:
    path: Path | None = None
    mime: str | None = None
    size: int = 0
    password: str | None = None
    metadata: dict = field(default_factory=dict)
    password_checked: bool = False


def error_response(status: int, reason: str, details: str, *, job_id=None, retry_after=None,
                   close: bool = False) -> web.Response:
    """The ingest's JSON error shape (DESIGN §5)."""
    body = {"status": "timeout" if reason == "timeout" else "error", "failure_reason": reason, "details": details}
    if job_id is not None:
        body["job_id"] = str(job_id)
    if retry_after is not None:
        body["retry_after"] = retry_after
    resp = web.json_response(body, status=status)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    if job_id is not None:
        resp.headers["X-Job-Id"] = str(job_id)
    if close:
        # The rest of the body was not read: close rather than drain an oversized or hostile upload.
        resp.force_close()
    return resp


class IngestHandler:
    def __init__(self, ctx, *, shutdown: asyncio.Event) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.verifier = CachedVerifier()
        self.shutdown = shutdown      # set when serve gives up waiting for in-flight ingests
        self.in_flight: set[asyncio.Task] = set()
        self._tasks: set[asyncio.Task] = set()
        self.margin = float(self.cfg.get("ingest.deadline_margin_ms")) / 1000.0
        self.lag = LagMonitor()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        self.in_flight.add(task)
        try:
            return await self._handle(request)
        finally:
            self.in_flight.discard(task)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        # The request arrived about one loop-lag before this handler got to run (server/lag.py).
        t0 = loop.time() - self.lag.seconds
        started = time.perf_counter()
        arrived = ctx.clock.now()
        slot_id = request.match_info.get("slot_id", "")
        upload = Upload()
        job_id = None
        job_created = False
        answer: web.StreamResponse | None = None
        outcome = "internal_error"
        try:
            try:
                if slot_id not in SLOT_IDS:
                    raise IngestError(404, "slot_not_found", "no such slot; slots are slot-001 … slot-015",
                                      unread_body=True)
                max_bytes = int(float(self.cfg.get("ingest.max_upload_mb")) * 1024 * 1024)
                if request.content_length is not None and request.content_length > max_bytes + 256 * 1024:
                    raise IngestError(413, "payload_too_large",
                                      f"upload is larger than {self.cfg.get('ingest.max_upload_mb')} MB",
                                      unread_body=True)
                try:
                    context = await ctx.db.fetchone("ingest_context", slot_id=slot_id)
                except DatabaseUnavailable:
                    raise IngestError(503, "database_unavailable", "the job database is not reachable; retry shortly",
                                      retry_after=2, unread_body=True) from None
                if context is None or not is_configured(context) or not context["enabled"]:
                    raise IngestError(404, "slot_not_found", f"{slot_id} is not configured or is disabled",
                                      unread_body=True)
                live = live_settings.from_rows(self.cfg, context["live_settings"] or {})
                window = live.sync_response_seconds
                deadline = t0 + window - self.margin
                expires_at = arrived + _seconds(window)
                if context["pending_jobs"] >= int(self.cfg.get("ingest.max_pending_jobs")):
                    raise IngestError(429, "queue_full", f"{context['pending_jobs']} jobs are waiting; retry shortly",
                                      retry_after=RETRY_AFTER_QUEUE_FULL, unread_body=True)
                try:
                    spent = await quotas.exhausted(ctx.db, self.cfg, context["provider_id"], arrived)
                except DatabaseUnavailable:
                    raise IngestError(503, "database_unavailable", "the job database is not reachable; retry shortly",
                                      retry_after=2, unread_body=True) from None
                if spent is not None:  # a job queued now could only fail: refuse before reading the photo
                    raise IngestError(503, "quota_exhausted", spent.detail, retry_after=spent.retry_after,
                                      unread_body=True)
                job_id = jobs.new_job_id()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._read_form(request, upload, job_id, max_bytes, live)
                except TimeoutError:
                    raise IngestError(504, "timeout", "the upload did not finish within the response window",
                                      unread_body=True) from None
                if upload.path is None:
                    raise IngestError(400, "invalid_request", "missing file field 'fileToUpload' (or 'file')")
                if not upload.password_checked:
                    await self._check_password(upload.password, live)
                if upload.mime is None:
                    raise IngestError(415, "unsupported_media_type", "the file is not a JPEG, PNG or WebP image")
                refused = catalogue.check_input(context["provider_id"], upload.mime, upload.size)
                if refused is not None:  # the slot's provider has its own type and size limits
                    raise IngestError(*refused)
                try:
                    await asyncio.to_thread(media_mod.check_image, upload.path, upload.mime)
                except media_mod.InvalidImage as exc:
                    raise IngestError(415, "unsupported_media_type", str(exc)) from None

                waiter = ctx.waiters.register(job_id)
                try:
                    try:
                        await jobs.enqueue(ctx.db, job_id=job_id, slot=context, now=arrived, expires_at=expires_at,
                                           upload_path=str(upload.path), upload_mime=upload.mime,
                                           upload_size=upload.size, metadata=upload.metadata)
                    except DatabaseUnavailable:
                        raise IngestError(503, "database_unavailable",
                                          "the job database is not reachable; retry shortly", retry_after=2) from None
                    job_created = True
                    event(log, "job_queued", job=str(job_id), slot=slot_id, provider=context["provider_id"],
                          operation=context["operation_id"], bytes=upload.size, mime=upload.mime,
                          window_s=window, upload_ms=int((time.perf_counter() - started) * 1000))
                    answer, outcome = await self._wait_and_answer(job_id, waiter, deadline, t0 + window)
                finally:
                    ctx.waiters.unregister(job_id)
            except IngestError as exc:
                outcome = exc.reason
                answer = error_response(exc.status, exc.reason, exc.details,
                                        job_id=job_id if job_created else None, retry_after=exc.retry_after,
                                        close=exc.unread_body)
            except Exception:
                # A bug must still give the booth the documented JSON and finalize the job; the
                # traceback goes to the log only.
                log.exception("ingest crashed (slot %s)", slot_id)
                outcome = "internal_error"
                if job_created:
                    await self._finalize_quietly(job_id, "internal_error", "internal error in the ingest handler")
                answer = error_response(500, "internal_error", "internal error; the photo was not processed",
                                        job_id=job_id if job_created else None, close=True)
        except asyncio.CancelledError:
            # The booth hung up (aiohttp cancels the handler when the client disconnects).
            outcome = "client_gone"
            if job_created:
                await asyncio.shield(self._finalize_quietly(job_id, "client_gone",
                                                            "the client disconnected before the answer"))
            raise
        finally:
            if not job_created and upload.path is not None:
                ctx.media.remove(upload.path)
            answered_ms = int((time.perf_counter() - started) * 1000)
            event(log, "ingest", job=str(job_id) if job_created else None, slot=slot_id, outcome=outcome,
                  status=answer.status if answer is not None else None, ms=answered_ms)
            metrics.safe(metrics.of(ctx).observe_ingest, slot_id, outcome,
                         answer.status if answer is not None else 499 if outcome == "client_gone" else 500,
                         answered_ms / 1000)
        if job_created:
            # Off the answer's path: stats read it later; losing it in an outage costs nothing else.
            self._background(jobs.record_answer(ctx.db, job_id=job_id, answered_ms=answered_ms))
        return answer

    def _background(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "exception not retrieved"

    # ---------------------------------------------------------------- reading the form

    async def _read_form(self, request: web.Request, upload: Upload, job_id, max_bytes: int, live) -> None:
        if not request.content_type.startswith("multipart/"):
            raise IngestError(400, "invalid_request", "expected multipart/form-data", unread_body=True)
        max_fields = int(self.cfg.get("ingest.max_extra_fields"))
        max_field_bytes = int(self.cfg.get("ingest.max_extra_field_bytes"))
        parts = 0
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                parts += 1
                if parts > MAX_PARTS:
                    raise IngestError(400, "invalid_request", f"more than {MAX_PARTS} form fields", unread_body=True)
                if not hasattr(part, "read_chunk"):
                    raise IngestError(400, "invalid_request", "nested multipart is not accepted", unread_body=True)
                name = part.name or ""
                if name in FILE_FIELDS:
                    if upload.path is not None:
                        raise IngestError(400, "invalid_request", "more than one file field", unread_body=True)
                    await self._stream_file(part, upload, job_id, max_bytes)
                elif name == "password":
                    raw = await _read_bounded(part, MAX_PASSWORD_BYTES)
                    if raw is None:
                        raise IngestError(400, "invalid_request", "password field is too long", unread_body=True)
                    upload.password = raw.decode("utf-8", errors="replace")
                    if upload.path is None:
                        # Password first (the usual order): refuse before reading the photo.
                        await self._check_password(upload.password, live, unread_body=True)
                        upload.password_checked = True
                else:
                    raw = await _read_bounded(part, max_field_bytes)
                    if len(upload.metadata) < max_fields and name:
                        key = _clean_text(name)[:100]
                        upload.metadata[key] = _clean_text(raw) if raw is not None else "…(too long, dropped)"
                    if raw is None:
                        await _drain(part, 1024 * 1024)
        except IngestError:
            raise
        except (ValueError, AssertionError, UnicodeDecodeError, KeyError, LookupError,
                HttpProcessingError) as exc:  # aiohttp's parser refusing a part's headers
            raise IngestError(400, "invalid_request", f"malformed multipart body ({exc.__class__.__name__})",
                              unread_body=True) from None

    async def _stream_file(self, part, upload: Upload, job_id, max_bytes: int) -> None:
        path = self.ctx.media.upload_path(job_id)
        upload.path = path
        size = 0
        head = b""
        try:
            with open(path, "wb") as fh:
                while True:
                    chunk = await part.read_chunk(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise IngestError(413, "payload_too_large",
                                          f"upload is larger than {self.cfg.get('ingest.max_upload_mb')} MB",
                                          unread_body=True)
                    if len(head) < 16:
                        head += chunk[:16]
                    fh.write(chunk)
        except OSError as exc:
            if isinstance(exc, ConnectionError):  # the booth went away mid-upload, not a disk problem
                raise
            # Disk full (ENOSPC/EDQUOT/EFBIG) or unwritable media root: the caller removes the partial file.
            event(log, "upload_write_failed", logging.ERROR, job=str(job_id), errno=exc.errno, error=exc.strerror)
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG)
            raise IngestError(503, "storage_full" if full else "storage_unavailable",
                              "the media disk is full; the photo was not stored" if full
                              else "the media storage is not writable; the photo was not stored",
                              retry_after=30, unread_body=True) from None
        upload.size = size
        upload.mime = media_mod.sniff_mime(head)
        if upload.mime is not None:
            final = self.ctx.media.upload_path(job_id, upload.mime)
            path.replace(final)
            upload.path = final

    async def _check_password(self, password: str | None, live, *, unread_body: bool = False) -> None:
        if live.ingest_password is None:
            raise IngestError(401, "invalid_password",
                              "no ingest password is set on this server (photoslot settings set --ingest-password)",
                              unread_body=unread_body)
        if password is None or not await self.verifier.verify(password, live.ingest_password):
            raise IngestError(401, "invalid_password", "wrong or missing password", unread_body=unread_body)

    # ---------------------------------------------------------------- waiting for the job

    async def _wait_and_answer(self, job_id, waiter: asyncio.Event, deadline: float, hard_deadline: float):
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        job = None
        while True:
            # React one loop-lag early: a timer due at the deadline fires about that late.
            remaining = deadline - self.lag.seconds - loop.time()
            if remaining <= 0 or self.shutdown.is_set():
                break
            # Woken by NOTIFY, by the process-wide fallback poll (jobs.DoneWaiters.poll_forever),
            # or by a shutdown; otherwise near the deadline (re-checked so a lag spike is seen).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout=remaining - 1.0 if remaining > 1.1 else min(remaining, 0.1))
            if not waiter.is_set():
                continue
            waiter.clear()
            try:
                job = await jobs.get(ctx.db, job_id)
            except DatabaseUnavailable:
                job = None
                continue
            if job is not None and job["is_finalized"]:
                return await self._answer_finalized(job)
        # The window is over (or serve is shutting down): finalize it ourselves, unless the worker won.
        if self.shutdown.is_set() and loop.time() < deadline:
            reason, detail = "internal_error", "the server is shutting down; send the photo again"
        else:
            reason, detail = "timeout", "no result within the response window"
        try:
            # Shielded: when the answer cannot wait any longer, the finalize still runs to its end.
            # Cancelled half-way it could commit the UPDATE yet skip deleting the upload.
            finalize = asyncio.ensure_future(
                jobs.finalize_failure(ctx.db, ctx.media, job_id=job_id, now=ctx.clock.now(), reason=reason,
                                      detail=detail))
            finalize.add_done_callback(lambda t: t.cancelled() or t.exception())  # an outage: the sweeper's job
            row = await asyncio.wait_for(asyncio.shield(finalize),
                                         timeout=max(0.01, hard_deadline - loop.time() - 0.005))
        except (asyncio.TimeoutError, DatabaseUnavailable):
            row = {"failure_reason": reason}  # answer on time; the sweeper finalizes the row later
            event(log, "finalize_deferred", logging.WARNING, job=str(job_id), reason=reason)
        if row is None:
            job = await jobs.get(ctx.db, job_id)
            return await self._answer_finalized(job)
        status, label = ingest_answer(row)
        return error_response(status, label, detail, job_id=job_id), label

    async def _answer_finalized(self, job: dict):
        if job["status"] == "succeeded":
            try:
                body = await asyncio.to_thread(Path(job["result_file_path"]).read_bytes)
            except OSError:
                return error_response(500, "internal_error", "the result file is missing", job_id=job["id"]), \
                    "internal_error"
            resp = web.Response(body=body, content_type=job["result_mime_type"])
            resp.headers["X-Job-Id"] = str(job["id"])
            ext = media_mod.MIME_EXT.get(job["result_mime_type"], "bin")
            resp.headers["Content-Disposition"] = f'inline; filename="{job["id"]}.{ext}"'
            return resp, "succeeded"
        status, label = ingest_answer(job)
        return error_response(status, label, job.get("failure_detail") or label, job_id=job["id"]), label

    async def _finalize_quietly(self, job_id, reason: str, detail: str) -> None:
        try:
            row = await jobs.finalize_failure(self.ctx.db, self.ctx.media, job_id=job_id, now=self.ctx.clock.now(),
                                              reason=reason, detail=detail)
            if row is not None:
                event(log, "job_cancelled", job=str(job_id), reason=reason)
        except Exception as exc:  # the sweeper will finalize it at the deadline
            event(log, "finalize_deferred", logging.WARNING, job=str(job_id), reason=reason, error=exc.__class__.__name__)


def _clean_text(value: str | bytes) -> str:
    """Client text safe to store as JSON: undecodable bytes (aiohttp keeps them as lone
    surrogates in names) and NULs become U+FFFD."""
    if isinstance(value, str):
        value = value.encode("utf-8", errors="surrogateescape")
    return value.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


async def _read_bounded(part, limit: int) -> bytes | None:
    """The part's bytes, or None when it is longer than `limit` (the excess is left unread)."""
    data = bytearray()
    while True:
        chunk = await part.read_chunk(min(limit + 1, 64 * 1024))
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            return None


async def _drain(part, limit: int) -> None:
    total = 0
    while True:
        chunk = await part.read_chunk(64 * 1024)
        if not chunk:
            return
        total += len(chunk)
        if total > limit:
            raise IngestError(413, "payload_too_large", "a form field is too large", unread_body=True)


def _seconds(value: float):
    import datetime as dt

    return dt.timedelta(seconds=value)


_HTTP_REASONS = {400: "invalid_request", 404: "slot_not_found", 405: "invalid_request", 413: "payload_too_large"}


@web.middleware
async def ingest_http_errors(request: web.Request, handler):
    """aiohttp's own refusals on /ingest/ paths (no such route, wrong method, bad request line)
    in the ingest's JSON shape, like every other ingest answer."""
    if not request.path.startswith("/ingest"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = _HTTP_REASONS.get(exc.status, "invalid_request")
        details = "use POST /ingest/slot-001 … slot-015" if exc.status in (404, 405) else exc.reason
        resp = error_response(exc.status, reason, details, close=True)
        if exc.status == 405:
            resp.headers["Allow"] = "POST"
        return resp
