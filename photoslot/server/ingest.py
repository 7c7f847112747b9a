"""POST /ingest/{slot_id} — the DSLR Remote Pro contract (docs/API.md "Ingest").

The whole answer (200 or an error) leaves within T_sync_response of the request's arrival. One
shot goes through four stages, each a method below (a slot id outside slot-001 … slot-015 and a
declared size over the limit are refused before any of them, `_precheck`):

1. receive — the form under the deadline. The password is checked as soon as it arrives, before
             anything else is looked up: a keyed hash compared in constant time (passwords.py), so
             the right password is accepted at once from any address, and a wrong one is answered
             401 — after a delay once its address has used its free failures (ingest_limits.py).
             Then admit: the slot, the provider's health (a down provider is refused 503
             provider_unavailable from memory), back-pressure and quota, in one query; an
             unconfigured or disabled slot is answered 404 only now, so the answer to a wrong
             password never tells slots apart. Only then does the photo go to uploads/ (a photo
             sent before the password waits in memory under a process-wide budget);
2. check   — type (from the bytes), the provider's limits, the image header;
3. queue   — the job row (from here on every exit finalizes the job);
4. wait and answer — the result, or the 504 when the window ends.

Every error path removes what it wrote (docs/ARCHITECTURE.md "Finalization").
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from photoslot import SLOT_IDS, ingest_limits, jobs, metrics, quotas
from photoslot import media as media_mod
from photoslot import secrets
from photoslot import settings as live_settings
from photoslot.db import DatabaseUnavailable
from photoslot.logs import event
from photoslot.outcomes import ingest_answer
from photoslot.passwords import NOTIFIED_REFRESH_SECONDS, REFRESH_SECONDS, IngestPasswordCheck, PasswordBusy
from photoslot.providers import catalogue
from photoslot.server.connection_guard import Connections
from photoslot.server.ingest_answers import IngestError, error_response
from photoslot.server.lag import LagMonitor
from photoslot.server.security import client_address
from photoslot.server.toolkit import (CHUNK, CompressedPart, FormError, PartTooLarge, copy_part, read_bounded,
                                     read_form)
from photoslot.slots import is_configured

log = logging.getLogger("photoslot.ingest")

FILE_FIELDS = ("fileToUpload", "file")
MAX_PASSWORD_BYTES = 1024
MAX_DROPPED_FIELD_BYTES = 1024 * 1024  # an over-long extra field is skipped up to this, then 413
RETRY_AFTER_QUEUE_FULL = 5
RETRY_AFTER_DB = 2
RETRY_AFTER_BUSY = 1
# Windows that end together (_crowd): each other window ending up to CROWD_SPAN before this one
# moves its 504 CROWD_STEP earlier, at most CROWD_CAP. A 504 alone moves by what the 504 path took
# lately (PATH_*), at most PATH_CAP: with the 40 ms margin, an ordinary 504 is ≤ 100 ms early.
CROWD_SPAN = 0.1
CROWD_STEP = 0.004
CROWD_CAP = 0.15
PATH_CAP = 0.06
PATH_HALF_LIFE = 30.0  # seconds
URGENT_SECONDS = 1.5  # the loop-lag probe runs fine-grained this long before a window ends
SHUTTING_DOWN = "the server is shutting down; send the photo again"
SHUTDOWN_FINALIZE_SECONDS = 2.0  # at a stop, an answer waits this long at most for its job's finalize
GUESS_REPORT_SECONDS = 60  # who is guessing: one summary per minute at most, never a line per guess
# Outcomes a guesser produces by the thousand: counted in the guess report and the metrics, not
# logged one line each.
QUIET_OUTCOMES = frozenset({"invalid_password", "server_busy"})
DELAY_MARGIN = 0.1  # a delayed 401 leaves this long before the shot's window ends, at the latest


@dataclass
class Shot:
    """One ingest on its way through the stages."""
    slot_id: str
    t0: float                  # loop time of the request's arrival
    started: float             # perf_counter at arrival, for the logged and measured durations
    arrived: dt.datetime       # clock time of arrival: the job's created_at
    job_id: uuid.UUID | None = None
    queued: bool = False       # the job row exists: from here on every exit finalizes it
    path: Path | None = None   # the upload on disk
    mime: str | None = None    # decided from the first bytes
    size: int = 0
    password: str | None = None
    password_checked: bool = False
    client: str = "unknown"    # the client's throttling key (ingest_limits.client_key)
    held: bytearray | None = None  # a photo that came before the password, in memory
    held_taken: int = 0        # bytes of the process-wide buffer budget this shot holds
    metadata: dict = field(default_factory=dict)
    filename: str | None = None  # as the booth named the photo (logged, escaped, never used as a path)
    provider: str | None = None  # the slot's provider, once the slot was read (for the rollups)
    is_test: bool = False      # an admin's test shot: counted apart from the booths' shots everywhere
    answered_ms: int = 0
    detail: str | None = None  # what a refused booth was told (the recent refusals' record, refusals.py)

    @property
    def answered_job(self):
        """The job id the answer may name: only once the job exists."""
        return self.job_id if self.queued else None


@dataclass
class Admission:
    """What the admit stage settled: the slot's row with the live settings, and the deadlines."""
    context: dict              # the slot row, live settings, queue depth, quota used (queries/slots.sql ingest_admission)
    live: live_settings.LiveSettings
    window: float              # T_sync_response for this shot, seconds
    deadline: float            # loop time to answer by: the window less deadline_margin_ms
    hard_deadline: float       # loop time the window ends
    expires_at: dt.datetime    # the job's deadline on the clock
    max_bytes: int
    slot_ready: bool = True    # configured and enabled; otherwise 404 once the password is right


class IngestHandler:
    def __init__(self, ctx, *, shutdown: asyncio.Event, connections: Connections | None = None) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.connections = connections if connections is not None else Connections()
        self.throttle = ingest_limits.PasswordThrottle.from_config(self.cfg, known=self.connections.known)
        self._live: live_settings.LiveSettings | None = None  # the settings as the password check last read them
        self.password = IngestPasswordCheck(
            load=self._load_password, keys=lambda: secrets.ingest_keys(self.cfg),
            upgrade=lambda password, old: live_settings.upgrade_ingest_password(ctx.db, self.cfg, password, old),
            generation=lambda: (live_settings.local_generation(), ctx.ingest_password_version),
            refresh_seconds=NOTIFIED_REFRESH_SECONDS if ctx.listener is not None else REFRESH_SECONDS)
        self.rehearsals = ingest_limits.RehearsalLimits(float(self.cfg.get("ingest.test_shots_per_minute")))
        self.buffers = ingest_limits.BufferBudget(
            int(float(self.cfg.get("ingest.file_before_password_buffer_mb")) * 1024 * 1024))
        self._report_at = float("-inf")
        self._report_handle: asyncio.TimerHandle | None = None
        self.shutdown = shutdown      # set when serve gives up waiting for in-flight ingests
        self.in_flight: set[asyncio.Task] = set()  # booths' shots and admins' test shots being handled
        self._receiving: set = set()  # the upload windows (asyncio.Timeout) of shots still reading their form
        self._tasks: set[asyncio.Task] = set()
        self.margin = float(self.cfg.get("ingest.deadline_margin_ms")) / 1000.0
        self.lag = LagMonitor(busy=lambda: bool(self.in_flight), urgent=self._deadline_near)
        self._ends: dict[uuid.UUID, float] = {}  # waiting shots' window ends (loop time), for _crowd
        self._path_s, self._path_at = 0.0, 0.0  # the 504 path's recent duration (_learn_504_path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        self.in_flight.add(task)
        self.lag.wake()
        try:
            return await self._handle(request)
        finally:
            self.in_flight.discard(task)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        # The request arrived about one loop-lag before this handler got to run (server/lag.py).
        shot = Shot(slot_id=request.match_info.get("slot_id", ""), t0=loop.time() - self.lag.seconds,
                    started=time.perf_counter(), arrived=self.ctx.clock.now())
        answer: web.StreamResponse | None = None
        outcome = "internal_error"
        try:
            try:
                answer, outcome = await self._stages(request, shot)
            except IngestError as exc:
                outcome, shot.detail = exc.reason, exc.details
                answer = error_response(exc.status, exc.reason, exc.details, job_id=shot.answered_job,
                                        retry_after=exc.retry_after, close=exc.unread_body)
            except Exception:
                # A bug must still give the booth the documented JSON and finalize the job; the
                # traceback goes to the log only.
                log.exception("ingest crashed (slot %s)", shot.slot_id)
                outcome = "internal_error"
                if shot.queued:
                    await self._finalize_quietly(shot.job_id, "internal_error", "internal error in the ingest handler")
                answer = error_response(500, "internal_error", "internal error; the photo was not processed",
                                        job_id=shot.answered_job, close=True)
        except asyncio.CancelledError:
            # The booth hung up (aiohttp cancels the handler when the client disconnects).
            outcome = "client_gone"
            if shot.queued:
                await asyncio.shield(self._finalize_quietly(shot.job_id, "client_gone",
                                                            "the client disconnected before the answer"))
            raise
        finally:
            self._account(shot, answer, outcome)
        if shot.queued:
            # Off the answer's path: stats read it later; losing it in an outage costs nothing else.
            self._background(jobs.record_answer(self.ctx.db, job_id=shot.job_id, answered_ms=shot.answered_ms))
        return answer

    async def _load_password(self) -> dict | None:
        """The password check's look-up: the record, and the window along with it (one query)."""
        rows = await self.ctx.db.fetchall("ingest_door_settings")
        self._live = live_settings.from_rows(self.cfg, {r["key"]: r["value"] for r in rows})
        return self._live.ingest_password

    async def _stages(self, request: web.Request, shot: Shot) -> tuple[web.StreamResponse, str]:
        shot.client = ingest_limits.client_key(client_address(request))
        self._precheck(shot, request.content_length)
        shot.job_id = jobs.new_job_id()
        admission = await self._receive(request, shot)
        await self._check(shot, admission)
        waiter = self.ctx.waiters.register(shot.job_id)
        try:
            await self._queue(shot, admission)
            return await self._wait_and_answer(shot.job_id, waiter, admission.deadline, admission.hard_deadline)
        finally:
            self.ctx.waiters.unregister(shot.job_id)

    def _account(self, shot: Shot, answer: web.StreamResponse | None, outcome: str) -> None:
        """Whatever the outcome: no upload outlives a shot without a job; one log line; the metrics."""
        if not shot.queued and shot.path is not None:
            self.ctx.media.remove(shot.path)
        self._release_held(shot)
        shot.answered_ms = int((time.perf_counter() - shot.started) * 1000)
        status = answer.status if answer is not None else None
        if outcome not in QUIET_OUTCOMES:
            event(log, "ingest", job=str(shot.job_id) if shot.queued else None, slot=shot.slot_id, outcome=outcome,
                  status=status, ms=shot.answered_ms)
        answered = status if status is not None else 499 if outcome == "client_gone" else 500
        metrics.safe(metrics.of(self.ctx).observe_ingest, shot.slot_id, outcome, answered, shot.answered_ms / 1000,
                     is_test=shot.is_test)
        if not shot.queued:  # a job is counted when it is finalized; a refusal here, in memory (rollups.py)
            self.ctx.refusals.add(at=shot.arrived, slot_id=shot.slot_id, provider_id=shot.provider, reason=outcome,
                                  status=answered, is_test=shot.is_test, client=shot.client, detail=shot.detail)

    def _background(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "exception not retrieved"

    async def rehearse(self, slot_id: str, data: bytes, *,
                       admin: str = "admin") -> tuple[web.StreamResponse, str, uuid.UUID | None, int]:
        """A test shot by a signed-in admin (the web admin's Slot page, POST /api/slots/{id}/test_shot):
        the photo goes through the stages a booth's goes through — slot, queue and quota checks,
        the photo checks (its size and pixel caps, off the event loop), the real queue and
        provider, the same window — minus the ingest password, which the admin's session stands
        in for. One test shot per slot at a time and `ingest.test_shots_per_minute` per admin
        (`admin`), else 429 at once. Returns (the booth's answer, its outcome label, the job id when
        one was queued, the milliseconds it took)."""
        loop = asyncio.get_running_loop()
        try:
            self.rehearsals.begin(slot_id, admin, loop.time())
        except ingest_limits.RehearsalRefused as exc:
            return (error_response(429, exc.reason, exc.details, retry_after=exc.retry_after), exc.reason, None, 0)
        shot = Shot(slot_id=slot_id, t0=loop.time(), started=time.perf_counter(), arrived=self.ctx.clock.now(),
                    client="admin-test-shot", is_test=True)
        answer: web.StreamResponse | None = None
        outcome = "internal_error"
        task = asyncio.current_task()
        self.in_flight.add(task)  # a stop gives it the grace and an answer, like a booth's shot
        try:
            try:
                answer, outcome = await self._rehearse_stages(shot, data)
            except IngestError as exc:
                outcome, shot.detail = exc.reason, exc.details
                answer = error_response(exc.status, exc.reason, exc.details, job_id=shot.answered_job)
        finally:
            self.in_flight.discard(task)
            self.rehearsals.end(slot_id)
            self._account(shot, answer, outcome)
        if shot.queued:
            self._background(jobs.record_answer(self.ctx.db, job_id=shot.job_id, answered_ms=shot.answered_ms))
        return answer, outcome, shot.answered_job, shot.answered_ms

    async def _rehearse_stages(self, shot: Shot, data: bytes) -> tuple[web.StreamResponse, str]:
        admission = await self._admit_context(shot, declared_size=len(data))
        if not admission.slot_ready:
            raise IngestError(404, "slot_not_found", f"{shot.slot_id} is not configured or is disabled")
        if len(data) > admission.max_bytes:
            raise self._too_large()
        shot.job_id = jobs.new_job_id()
        shot.password_checked = True

        async def fill(write) -> int:
            for at in range(0, len(data), CHUNK):
                write(data[at:at + CHUNK])
            return len(data)

        await self._write_upload(shot, fill)
        await self._check(shot, admission)
        waiter = self.ctx.waiters.register(shot.job_id)
        try:
            await self._queue(shot, admission)
            return await self._wait_and_answer(shot.job_id, waiter, admission.deadline, admission.hard_deadline)
        finally:
            self.ctx.waiters.unregister(shot.job_id)

    # ---------------------------------------------------------------- before reading

    def _precheck(self, shot: Shot, declared_size: int | None) -> None:
        """What is refused before a byte is read: a slot id that does not exist (they are public),
        a declared size over the limit."""
        if shot.slot_id not in SLOT_IDS:
            raise IngestError(404, "slot_not_found", "no such slot; slots are slot-001 … slot-015", unread_body=True)
        if declared_size is not None and declared_size > media_mod.max_upload_bytes(self.cfg) + 256 * 1024:
            raise self._too_large()

    # ---------------------------------------------------------------- admit (in receive, after the password)

    async def _admit_context(self, shot: Shot, *, declared_size: int | None) -> Admission:
        """The admit stage's checks of the slot, the queue and the quota (booths and test shots alike)."""
        max_bytes = media_mod.max_upload_bytes(self.cfg)
        if declared_size is not None and declared_size > max_bytes + 256 * 1024:
            raise self._too_large()
        minute = quotas.window_starts(shot.arrived)["minute"]
        context = await _reachable(self.ctx.db.fetchone("ingest_admission", slot_id=shot.slot_id, minute=minute,
                                                        days=quotas.day_starts(self.cfg, shot.arrived)),
                                   unread_body=True)
        shot.provider = context["provider_id"] if context is not None else None
        if context is None:
            raise IngestError(404, "slot_not_found", f"{shot.slot_id} is not configured or is disabled",
                              unread_body=True)
        live = live_settings.from_rows(self.cfg, context["live_settings"] or {})
        if not is_configured(context) or not context["enabled"]:
            # Answered 404 only once the password is right (receive): no slot enumeration by guessers.
            return self._admission(shot, context, live, max_bytes, slot_ready=False)
        down = self.ctx.health.refusal(context["provider_id"], shot.arrived)
        if down is not None:  # from this process's copy of the provider health: no statement per shot
            retry, why = down
            raise IngestError(503, "provider_unavailable", why, retry_after=retry, unread_body=True)
        if context["pending_jobs"] >= int(self.cfg.get("ingest.max_pending_jobs")):
            raise IngestError(429, "queue_full", f"{context['pending_jobs']} jobs are waiting; retry shortly",
                              retry_after=RETRY_AFTER_QUEUE_FULL, unread_body=True)
        spent = quotas.exhausted_among(self.cfg, context["provider_id"], context["quota_used"] or {}, shot.arrived)
        if spent is not None:  # a job queued now could only fail: refuse before reading the photo
            raise IngestError(503, "quota_exhausted", spent.detail, retry_after=spent.retry_after, unread_body=True)
        return self._admission(shot, context, live, max_bytes)

    def _admission(self, shot: Shot, context: dict, live, max_bytes: int, *, slot_ready: bool = True) -> Admission:
        window = live.sync_response_seconds
        return Admission(context=context, live=live, window=window, deadline=shot.t0 + window - self.margin,
                         hard_deadline=shot.t0 + window, expires_at=shot.arrived + dt.timedelta(seconds=window),
                         max_bytes=max_bytes, slot_ready=slot_ready)

    # ---------------------------------------------------------------- 1. receive

    async def _receive(self, request: web.Request, shot: Shot) -> Admission:
        """Read the form under the deadline: the password (checked at once, then the admission),
        the photo (to uploads/ once the password is right, held in memory until then), extra fields."""
        max_fields = int(self.cfg.get("ingest.max_extra_fields"))
        max_field_bytes = int(self.cfg.get("ingest.max_extra_field_bytes"))
        max_bytes = media_mod.max_upload_bytes(self.cfg)
        admitted: list[Admission] = []
        # Until the admission reads the live window: the one the password check's copy holds.
        await _reachable(self.password.current(), unread_body=True)
        live = self._live or live_settings.from_rows(self.cfg, {})
        window = asyncio.timeout_at(shot.t0 + live.sync_response_seconds - self.margin)

        async def prove(unread_body: bool) -> None:
            await self._check_password(request, shot, unread_body=unread_body)
            admission = await self._admit_context(shot, declared_size=request.content_length)
            admitted.append(admission)
            # the admission's window — unless the stop already ended this upload (begin_shutdown)
            window.reschedule(asyncio.get_running_loop().time() if self.shutdown.is_set() else admission.deadline)
            if not admission.slot_ready:
                raise IngestError(404, "slot_not_found", f"{shot.slot_id} is not configured or is disabled",
                                  unread_body=unread_body)
            if shot.held is not None:
                await self._store_held(shot)

        async def on_part(part) -> None:
            name = part.name or ""
            if name in FILE_FIELDS:
                if shot.path is not None or shot.held is not None:
                    raise IngestError(400, "invalid_request", "more than one file field", unread_body=True)
                shot.filename = part.filename
                if shot.password_checked:  # the usual order: password first, photo straight to disk
                    await self._stream_file(part, shot, admitted[0].max_bytes)
                else:
                    await self._hold_file(part, shot, max_bytes)
            elif name == "password":
                if shot.password is not None:
                    raise IngestError(400, "invalid_request", "more than one password field", unread_body=True)
                raw = await read_bounded(part, MAX_PASSWORD_BYTES)
                if raw is None:
                    raise IngestError(400, "invalid_request", "password field is too long", unread_body=True)
                shot.password = raw.decode("utf-8", errors="replace")
                await prove(unread_body=True)
            else:
                raw = await read_bounded(part, max_field_bytes)
                if len(shot.metadata) < max_fields and name:
                    shot.metadata[_clean_text(name)[:100]] = _clean_text(raw) if raw is not None else "…(too long, dropped)"
                if raw is None:
                    await _skip(part)

        try:
            async with window:
                self._receiving.add(window)  # begin_shutdown ends it early
                try:
                    if self.shutdown.is_set():
                        window.reschedule(asyncio.get_running_loop().time())
                    await read_form(request, on_part)
                    if not shot.password_checked:  # the form ended without a password field
                        await prove(unread_body=False)
                finally:
                    self._receiving.discard(window)
        except CompressedPart as exc:
            raise IngestError(415, "unsupported_media_type", str(exc), unread_body=True) from None
        except FormError as exc:
            raise IngestError(400, "invalid_request", str(exc), unread_body=True) from None
        except TimeoutError:
            if self.shutdown.is_set():
                raise IngestError(500, "internal_error", SHUTTING_DOWN, unread_body=True) from None
            raise IngestError(504, "timeout", "the upload did not finish within the response window",
                              unread_body=True) from None
        return admitted[0]

    async def _stream_file(self, part, shot: Shot, max_bytes: int) -> None:
        try:
            await self._write_upload(shot, lambda write: copy_part(part, write, max_bytes))
        except PartTooLarge:
            raise self._too_large() from None

    async def _hold_file(self, part, shot: Shot, max_bytes: int) -> None:
        """A photo before the password: into memory, under the process-wide budget, never to disk."""
        shot.held = bytearray()

        def keep(chunk: bytes) -> None:
            if not self.buffers.take(len(chunk)):
                raise _BudgetFull()
            shot.held_taken += len(chunk)
            shot.held += chunk

        try:
            await copy_part(part, keep, max_bytes)
        except PartTooLarge:
            raise self._too_large() from None
        except _BudgetFull:
            self._refused(shot, "busy")
            raise IngestError(503, "server_busy", "the photo came before the password and the memory for such "
                              "uploads is in use; send the password field first, or retry",
                              retry_after=RETRY_AFTER_BUSY, unread_body=True) from None

    async def _store_held(self, shot: Shot) -> None:
        """The password was right: the held photo goes to uploads/ like a streamed one."""
        held = memoryview(shot.held)

        async def replay(write) -> int:
            for at in range(0, len(held), CHUNK):
                write(held[at:at + CHUNK])
            return len(held)

        try:
            await self._write_upload(shot, replay)
        finally:
            held.release()
            self._release_held(shot)

    def _release_held(self, shot: Shot) -> None:
        self.buffers.give_back(shot.held_taken)
        shot.held_taken = 0
        shot.held = None

    def _too_large(self) -> IngestError:
        return IngestError(413, "payload_too_large", f"upload is larger than {self.cfg.get('ingest.max_upload_mb')} MB",
                           unread_body=True)

    async def _write_upload(self, shot: Shot, fill) -> None:
        """The photo to uploads/: `fill(write)` feeds it chunk by chunk and returns its size."""
        path = self.ctx.media.upload_path(shot.job_id)
        shot.path = path
        head = b""
        try:
            with open(path, "wb") as fh:
                def write(chunk) -> None:
                    nonlocal head
                    if len(head) < 16:
                        head += bytes(chunk[:16])
                    fh.write(chunk)

                shot.size = await fill(write)
        except OSError as exc:
            if isinstance(exc, ConnectionError):  # the booth went away mid-upload, not a disk problem
                raise
            # Disk full (ENOSPC/EDQUOT/EFBIG) or unwritable media root: the caller removes the partial file.
            event(log, "upload_write_failed", logging.ERROR, job=str(shot.job_id), errno=exc.errno, error=exc.strerror)
            full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG)
            raise IngestError(503, "storage_full" if full else "storage_unavailable",
                              "the media disk is full; the photo was not stored" if full
                              else "the media storage is not writable; the photo was not stored",
                              retry_after=30, unread_body=True) from None
        shot.mime = media_mod.sniff_mime(head)
        if shot.mime is not None:
            final = self.ctx.media.upload_path(shot.job_id, shot.mime)
            path.replace(final)
            shot.path = final

    # ---------------------------------------------------------------- 2. check

    async def _check(self, shot: Shot, admission: Admission) -> None:
        """The photo as received (the password was proven in receive): present, a supported image the
        provider takes."""
        if shot.path is None:
            raise IngestError(400, "invalid_request", "missing file field 'fileToUpload' (or 'file')")
        if shot.mime is None:
            raise IngestError(415, "unsupported_media_type", "the file is not a JPEG, PNG or WebP image")
        refused = catalogue.check_input(admission.context["provider_id"], shot.mime, shot.size)
        if refused is not None:  # the slot's provider has its own type and size limits
            raise IngestError(*refused)
        try:
            await media_mod.off_loop(media_mod.check_image, shot.path, shot.mime)
        except media_mod.DamagedImage as exc:  # cut short, corrupt, or lying about its size
            raise IngestError(422, "invalid_image", str(exc)) from None
        except media_mod.InvalidImage as exc:
            raise IngestError(415, "unsupported_media_type", str(exc)) from None

    async def _check_password(self, request: web.Request, shot: Shot, *, unread_body: bool) -> None:
        """The password, against the keyed hash (microseconds, no queue): right → the address is
        known from now on; wrong or missing → 401, delayed once the address used its free failures
        (ingest_limits.py says why a delay and not a refusal). The same answer for every slot id."""
        loop = asyncio.get_running_loop()
        try:
            ok = shot.password is not None and await self.password.matches(shot.password)
            if not ok and self.password.record is None:
                raise IngestError(401, "invalid_password", "no ingest password is set on this server "
                                  "(photoslot settings set --ingest-password)", unread_body=unread_body)
            if not ok:
                # Counted and marked before anything else is awaited: a client that hangs up now
                # has had its try (and its connection's place stays taken for the delay).
                delay = self._refused(shot, "wrong")
                until = loop.time() + delay
                self.connections.penalize(request, until)
                # The record may have changed in another process a moment ago: the right password
                # must not be refused for that.
                ok = shot.password is not None and await self.password.matches_since(shot.password, arrived=shot.t0)
                if not ok:
                    await self._delay_answer(shot, until)
                    raise IngestError(401, "invalid_password", "wrong or missing password", unread_body=unread_body)
                self.connections.pardon(request)
        except PasswordBusy:  # an old scrypt record, checked on its own thread, and that is full
            self._refused(shot, "busy")
            raise IngestError(503, "server_busy", "too many password checks at once; retry shortly",
                              retry_after=RETRY_AFTER_BUSY, unread_body=unread_body) from None
        except DatabaseUnavailable:
            raise IngestError(503, "database_unavailable", "the job database is not reachable; retry shortly",
                              retry_after=RETRY_AFTER_DB, unread_body=unread_body) from None
        self.throttle.succeeded(shot.client)
        self.connections.prove(request, shot.client)
        shot.password_checked = True

    async def _delay_answer(self, shot: Shot, until: float) -> None:
        """Hold a wrong password's 401 until loop time `until` (at the latest just before the shot's
        window ends). Meanwhile the connection is the first to be shed, and if the client hangs up,
        its place among its address's connections stays taken until `until`."""
        loop = asyncio.get_running_loop()
        window = self._live.sync_response_seconds if self._live is not None else 0.0
        wait = min(until, shot.t0 + window - self.margin - DELAY_MARGIN) - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)

    def _now(self) -> float:
        return self.ctx.clock.now().timestamp()

    def _refused(self, shot: Shot, kind: str) -> float:
        """A refusal before the password was proven, "wrong" or "busy": a failure for the throttle
        (a client refused as busy again and again is sending faster than it is answered, and its
        wrong passwords are delayed like a guesser's), except "busy" for a known address, which is
        only counted. Either way it is in the next guess report, never a log line of its own.
        Returns how long a wrong password's answer waits."""
        delay = 0.0
        if kind == "wrong" or not self.throttle.proven(shot.client):
            delay = self.throttle.failed(shot.client, self._now(), kind)
        else:
            self.throttle.note(shot.client, kind)
        self._report_guessing()
        return delay if kind == "wrong" else 0.0

    def _report_guessing(self) -> None:
        """Schedule the guess report: at once after a quiet minute, else when the minute is over."""
        if self._report_handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._report_at + GUESS_REPORT_SECONDS - loop.time())
        self._report_handle = loop.call_later(delay, self._log_guessing)

    def _log_guessing(self) -> None:
        self._report_handle = None
        self._report_at = asyncio.get_running_loop().time()
        report = self.throttle.report()
        if report is None:
            return
        for client, counts in report.top:
            event(log, "ingest_refused_before_password", logging.WARNING, client=client, **counts)
        if report.other_addresses or any(report.other.values()):
            event(log, "ingest_refused_before_password", logging.WARNING, client="others",
                  addresses=report.other_addresses, **report.other)

    def begin_shutdown(self) -> None:
        """The stop's grace is over: every shot still in flight is answered now — one waiting for its
        result gets the "shutting down" answer (its job finalized), one still uploading too (its
        upload window is ended at once: a trickling body must not hold the stop until its window)."""
        self.shutdown.set()
        self.ctx.waiters.wake_all()
        now = asyncio.get_running_loop().time()
        for window in list(self._receiving):
            with contextlib.suppress(RuntimeError):  # already expiring or left
                window.reschedule(now)

    def close(self) -> None:
        """At the app's clean-up: the last guess report, and the old-record checker's thread."""
        if self._report_handle is not None:
            self._report_handle.cancel()
            self._log_guessing()
        self.password.close()

    # ---------------------------------------------------------------- 3. queue

    async def _queue(self, shot: Shot, admission: Admission) -> None:
        context = admission.context
        await _reachable(jobs.enqueue(self.ctx.db, job_id=shot.job_id, slot=context, now=shot.arrived,
                                      expires_at=admission.expires_at, upload_path=str(shot.path),
                                      upload_mime=shot.mime, upload_size=shot.size, metadata=shot.metadata,
                                      is_test=shot.is_test))
        shot.queued = True
        event(log, "job_queued", job=str(shot.job_id), slot=shot.slot_id, provider=context["provider_id"],
              operation=context["operation_id"], bytes=shot.size, mime=shot.mime, window_s=admission.window,
              test=shot.is_test or None,
              upload_ms=int((time.perf_counter() - shot.started) * 1000), filename=shot.filename,
              fields=",".join(shot.metadata) or None)  # the extra fields' names only: values may be a guest's e-mail

    # ---------------------------------------------------------------- 4. wait and answer

    async def _wait_and_answer(self, job_id, waiter: asyncio.Event, deadline: float, hard_deadline: float):
        self._ends[job_id] = hard_deadline
        try:
            done = await self._wait(job_id, waiter, deadline, hard_deadline)
        finally:
            self._ends.pop(job_id, None)
        if done is not None:
            return await self._answer_finalized(*done)
        started = asyncio.get_running_loop().time()
        try:
            return await self._answer_window_closed(job_id, deadline, hard_deadline)
        finally:
            self._learn_504_path(asyncio.get_running_loop().time() - started)

    def _learn_504_path(self, seconds: float) -> None:
        """How long the 504 path (finalizing UPDATE, answer) took lately: a decaying maximum (half
        of it forgotten every PATH_HALF_LIFE seconds), by which the next windows give up earlier."""
        now = asyncio.get_running_loop().time()
        kept = self._path_s * 0.5 ** ((now - self._path_at) / PATH_HALF_LIFE)
        self._path_s, self._path_at = max(seconds, kept), now

    def _deadline_near(self) -> bool:
        """A waiting shot's window ends within URGENT_SECONDS, or shots are arriving (not waiting yet)."""
        if len(self.in_flight) > len(self._ends):
            return True
        horizon = asyncio.get_running_loop().time() + URGENT_SECONDS
        return any(end <= horizon for end in self._ends.values())

    def _crowd(self, job_id, hard_deadline: float) -> float:
        """How much earlier to give up than deadline_margin_ms alone says: when other windows end
        together with this one (booths that shot in the same second) their 504s — each a
        finalizing UPDATE and an answer on this loop — go out one after another, so the last would
        leave late: CROWD_STEP per window ending within CROWD_SPAN before this one, at most
        CROWD_CAP; and at least as long as the 504 path took lately (_learn_504_path), at most
        PATH_CAP: a 504 alone never leaves more than deadline_margin_ms + PATH_CAP (+ the loop's
        lag) before the window ends."""
        now = asyncio.get_running_loop().time()
        learned = min(PATH_CAP, self._path_s * 0.5 ** ((now - self._path_at) / PATH_HALF_LIFE))
        if len(self._ends) < 2:
            return learned
        others = sum(1 for end in self._ends.values() if hard_deadline - CROWD_SPAN <= end <= hard_deadline) - 1
        return max(learned, min(CROWD_CAP, others * CROWD_STEP))

    async def _wait(self, job_id, waiter: asyncio.Event, deadline: float,
                    hard_deadline: float) -> tuple[dict, bytes | None] | None:
        """The finalized job (and its result's bytes when a worker of this process handed them over),
        or None once the window is over (or serve is shutting down)."""
        loop = asyncio.get_running_loop()
        while True:
            # React one loop-lag early: a timer due at the deadline fires about that late.
            remaining = deadline - self.lag.seconds - self._crowd(job_id, hard_deadline) - loop.time()
            if remaining <= 0 or self.shutdown.is_set():
                return None
            # Woken by NOTIFY, by the process-wide fallback poll (jobs.DoneWaiters.poll_forever),
            # or by a shutdown; otherwise near the deadline (re-checked so a lag spike is seen).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout=remaining - 1.0 if remaining > 1.1 else min(remaining, 0.1))
            if not waiter.is_set():
                continue
            waiter.clear()
            delivered = self.ctx.waiters.delivered(job_id)
            if delivered is not None:  # finalized by a worker of this process: no re-read
                return delivered
            if self.shutdown.is_set():  # the stop answers now, without a read the database may not answer
                return None
            try:
                job = await jobs.get(self.ctx.db, job_id)
            except DatabaseUnavailable:
                continue
            if job is not None and job["is_finalized"]:
                return job, None

    async def _answer_window_closed(self, job_id, deadline: float, hard_deadline: float):
        """Finalize the job ourselves — unless the worker won the race — and answer inside the window."""
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        wait = max(0.01, hard_deadline - loop.time() - 0.005)
        if self.shutdown.is_set() and loop.time() < deadline:
            reason, detail = "internal_error", SHUTTING_DOWN
            wait = min(wait, SHUTDOWN_FINALIZE_SECONDS)  # a stop is bounded: the sweeper finalizes the rest
        else:
            reason, detail = "timeout", "no result within the response window"
        try:
            # Shielded: when the answer cannot wait any longer, the finalize still runs to its end.
            # Cancelled half-way it could commit the UPDATE yet skip deleting the upload.
            finalize = asyncio.ensure_future(
                jobs.finalize_failure(ctx.db, ctx.media, job_id=job_id, now=ctx.clock.now(), reason=reason,
                                      detail=detail))
            finalize.add_done_callback(lambda t: t.cancelled() or t.exception())  # an outage: the sweeper's job
            row = await asyncio.wait_for(asyncio.shield(finalize), timeout=wait)
        except (asyncio.TimeoutError, DatabaseUnavailable):
            row = {"failure_reason": reason}  # answer on time; the sweeper finalizes the row later
            event(log, "finalize_deferred", logging.WARNING, job=str(job_id), reason=reason)
        if row is None:
            return await self._answer_finalized(await jobs.get(ctx.db, job_id))
        status, label = ingest_answer(row)
        return error_response(status, label, detail, job_id=job_id), label

    async def _answer_finalized(self, job: dict, body: bytes | None = None):
        if job["status"] == "succeeded":
            try:
                if body is None:
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
        retry = None
        if label == "provider_unavailable":  # ended because its provider went down: say when to try again
            down = self.ctx.health.refusal(job["provider_id"], self.ctx.clock.now())
            retry = down[0] if down else 1
        return error_response(status, label, job.get("failure_detail") or label, job_id=job["id"],
                              retry_after=retry), label

    async def _finalize_quietly(self, job_id, reason: str, detail: str) -> None:
        try:
            row = await jobs.finalize_failure(self.ctx.db, self.ctx.media, job_id=job_id, now=self.ctx.clock.now(),
                                              reason=reason, detail=detail)
            if row is not None:
                event(log, "job_cancelled", job=str(job_id), reason=reason)
        except Exception as exc:  # the sweeper will finalize it at the deadline
            event(log, "finalize_deferred", logging.WARNING, job=str(job_id), reason=reason, error=exc.__class__.__name__)


class _BudgetFull(Exception):
    """A held photo's next chunk does not fit the process-wide buffer budget."""


async def _reachable(query, *, unread_body: bool = False):
    """The query's result; a database outage becomes the ingest's 503 (the booth retries)."""
    try:
        return await query
    except DatabaseUnavailable:
        raise IngestError(503, "database_unavailable", "the job database is not reachable; retry shortly",
                          retry_after=RETRY_AFTER_DB, unread_body=unread_body) from None


def _clean_text(value: str | bytes) -> str:
    """Client text safe to store as JSON: undecodable bytes (aiohttp keeps them as lone
    surrogates in names) and NULs become U+FFFD."""
    if isinstance(value, str):
        value = value.encode("utf-8", errors="surrogateescape")
    return value.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


async def _skip(part) -> None:
    """Read past an over-long extra field (its value is dropped); a huge one ends the shot."""
    try:
        await copy_part(part, lambda _chunk: None, MAX_DROPPED_FIELD_BYTES)
    except PartTooLarge:
        raise IngestError(413, "payload_too_large", "a form field is too large", unread_body=True) from None
