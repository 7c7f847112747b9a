"""The ingest's own answer shape (the DSLR Remote Pro contract, docs/API.md "Ingest").

Every ingest error is JSON `{"status": "error"|"timeout", "failure_reason", "details"}` plus
`job_id` (and the `X-Job-Id` header) once a job exists, and `retry_after` (and `Retry-After`)
where waiting helps. It is built here, once, for the handler and for aiohttp's own refusals.
"""
from __future__ import annotations

from aiohttp import web

from photoslot.server.keys import CTX


class IngestError(Exception):
    """Ends an ingest with an error answer. `unread_body`: the request body was not read to its
    end, so the connection is closed rather than drained (an oversized or hostile upload)."""

    def __init__(self, status: int, reason: str, details: str, *, retry_after: int | None = None,
                 unread_body: bool = False) -> None:
        super().__init__(details)
        self.status = status
        self.reason = reason
        self.details = details
        self.retry_after = retry_after
        self.unread_body = unread_body


def error_body(reason: str, details: str, *, job_id=None, retry_after: int | None = None) -> dict:
    """The JSON of an ingest error: `status` says "timeout" for the 504, "error" for all else."""
    body = {"status": "timeout" if reason == "timeout" else "error", "failure_reason": reason, "details": details}
    if job_id is not None:
        body["job_id"] = str(job_id)
    if retry_after is not None:
        body["retry_after"] = retry_after
    return body


def error_response(status: int, reason: str, details: str, *, job_id=None, retry_after=None,
                   close: bool = False) -> web.Response:
    resp = web.json_response(error_body(reason, details, job_id=job_id, retry_after=retry_after), status=status)
    if retry_after is not None:
        resp.headers["Retry-After"] = str(retry_after)
    if job_id is not None:
        resp.headers["X-Job-Id"] = str(job_id)
    if close:
        # The rest of the body was not read: close rather than drain an oversized or hostile upload.
        resp.force_close()
    return resp


# aiohttp's own refusals on /ingest paths → the ingest's failure_reason
HTTP_REASONS = {400: "invalid_request", 404: "slot_not_found", 405: "invalid_request", 413: "payload_too_large"}


def http_refusal(status: int, reason_phrase: str) -> tuple[str, str]:
    """(failure_reason, details) for a refusal aiohttp made before our handler ran."""
    details = "use POST /ingest/slot-001 … slot-015" if status in (404, 405) else reason_phrase
    return HTTP_REASONS.get(status, "invalid_request"), details


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
        reason, details = http_refusal(exc.status, exc.reason)
        ctx = request.app.get(CTX)
        if ctx is not None:  # counted like every other ingest request (photoslot/rollups.py)
            ctx.refusals.add(at=ctx.clock.now(), slot_id=request.match_info.get("slot_id", ""), provider_id=None,
                             reason=reason, status=exc.status, detail=details)
        resp = error_response(exc.status, reason, details, close=True)
        if exc.status == 405:
            resp.headers["Allow"] = "POST"
        return resp
