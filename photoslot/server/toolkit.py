"""The HTTP toolkit every handler module builds on: JSON answers, the one error shape of `/api/*`
and the public links, the `/api` error middleware, `endpoint` (context, bearer token,
permission), query parsing, and the one multipart reader that the ingest and the admin uploads
share.

Handlers stay thin: they parse the request with these helpers, call a service function, and
answer. Validation, audit and state changes live in the service modules (photoslot/*.py).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from photoslot import auth, media
from photoslot.clock import rfc3339
from photoslot.db import DatabaseUnavailable
from photoslot.errors import PhotoslotError, ValidationError
from photoslot.logs import event
from photoslot.server.keys import CTX, QUERY_PARAMS
from photoslot.server.security import identity_encoding, prove_client

log = logging.getLogger("photoslot.admin")

# ---------------------------------------------------------------- answers


def _default(value):
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(data) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False)


def answer(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def error_answer(status: int, code: str, message: str, details: dict | None = None,
                 headers: dict | None = None) -> web.Response:
    """The error shape of `/api/*` and the public links: {"error": {"code", "message", "details"}}."""
    return answer({"error": {"code": code, "message": message, "details": details or {}}}, status, headers)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type"}


@web.middleware
async def api_errors(request: web.Request, handler):
    """Only /api/*: every failure in the one admin error shape; ingest and public paths keep theirs."""
    if not request.path.startswith("/api/") and request.path != "/api":
        return await handler(request)
    try:
        return await handler(request)
    except auth.Throttled as exc:
        return error_answer(429, exc.code, exc.message, exc.details, {"Retry-After": str(exc.retry_after)})
    except auth.Unauthorized as exc:
        return error_answer(401, exc.code, exc.message, exc.details, {"WWW-Authenticate": 'Bearer realm="photoslot"'})
    except PhotoslotError as exc:
        return error_answer(exc.http_status, exc.code, exc.message, exc.details)
    except DatabaseUnavailable as exc:
        event(log, "admin_db_unavailable", logging.ERROR, path=request.path, error=exc)
        return error_answer(503, "database_unavailable", "the database is not reachable; retry shortly",
                            headers={"Retry-After": "2"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_answer(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    except Exception:  # a bug: the traceback goes to the log, never to the client
        log.exception("admin API %s %s failed", request.method, request.path)
        return error_answer(500, "internal_error", "internal error; see the server log")


# ---------------------------------------------------------------- endpoint

Handler = Callable[[web.Request, object, dict | None], Awaitable[web.StreamResponse]]


SIGNED_IN = ""  # endpoint(SIGNED_IN): any valid token, whatever its permissions (sign-out)


def endpoint(permission: str | None):
    """Wrap a handler `fn(request, ctx, claims)`: the one way a handler reaches the AppContext.

    With a permission, the bearer token must be valid now — signed here, not expired, of its admin's
    current session (auth.authenticate) — and carry the permission (claims are passed on);
    SIGNED_IN asks for a valid token only; None means a public handler (claims None).
    Then, on /api/*, the query string: a parameter the operation does not take, or one given twice,
    is refused with 422 (check_query) — a misspelled filter never silently widens an answer.
    """

    def wrap(fn: Handler):
        async def handler(request: web.Request) -> web.StreamResponse:
            ctx = request.app[CTX]
            claims = None
            if permission is not None:
                claims = await auth.authenticate(ctx, auth.bearer_token(request.headers.get("Authorization")))
                prove_client(request)
                if permission != SIGNED_IN:
                    auth.require(claims, permission)
            check_query(request)
            return await fn(request, ctx, claims)

        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler

    return wrap


def check_query(request: web.Request) -> None:
    """On /api/*: every query parameter must be one the OpenAPI document names for this operation,
    and given once; otherwise a 422 naming each offending parameter (the document is the one list).
    The public links, health and metrics take whatever a fetcher appends."""
    if not request.query or not request.path.startswith("/api/"):
        return
    method = "get" if request.method == "HEAD" else request.method.lower()
    template = request.match_info.route.resource.canonical
    allowed = request.app[QUERY_PARAMS].get((template, method), ())
    errors = {}
    for name in request.query:
        if name not in allowed:
            takes = f"; it takes {', '.join(allowed)}" if allowed else "; it takes none"
            errors[name] = f"unknown query parameter{takes}"
        elif len(request.query.getall(name)) > 1:
            errors[name] = "given more than once"
    if errors:
        raise ValidationError(errors)


def actor(claims: dict) -> str:
    """Who the audit log names for a write made over the API."""
    return f"admin:{claims['sub']}"


# ---------------------------------------------------------------- request bodies and queries

def unstorable_text(value) -> bool:
    """True when a string anywhere in `value` holds NUL or a lone surrogate: json.loads lets both
    through ("\\u0000", "\\ud800"), but they are not UTF-8 text and PostgreSQL cannot store them."""
    stack = [value]
    while stack:  # iterative: the depth is the client's choice
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


async def json_body(request: web.Request, *, optional: bool = False) -> dict:
    """The request's JSON object (400 for anything else); with `optional`, no body at all is {}."""
    if optional and not await request.read():
        return {}
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError):
        raise auth.BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise auth.BadRequest("the body must be a JSON object")
    if unstorable_text(body):
        raise auth.BadRequest("the body's strings must be UTF-8 text without NUL characters")
    return body


def q_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError({name: "must be an integer"}) from None


def q_bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValidationError({name: "must be true or false"})


def q_str(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    return raw if raw not in (None, "") else None


# ---------------------------------------------------------------- the multipart reader
#
# One reader for every upload (the booth's POST /ingest and the admin's media/template uploads):
# parts are read one at a time and never buffered past their limit, so a huge or endless body
# costs at most one chunk beyond the limit before it is refused.

CHUNK = 256 * 1024
MAX_PARTS = 200


class FormError(Exception):
    """A multipart body that cannot be read: not multipart, nested, malformed, or too many parts.
    Each caller answers it in its own error shape (status 400)."""


class CompressedPart(FormError):
    """A part with a Content-Encoding other than identity: refused (415) before a byte is inflated."""


class PartTooLarge(Exception):
    """A part went past the limit its reader set; the rest of it is left unread."""


async def read_form(request: web.Request, on_part: Callable[[object], Awaitable[None]], *,
                    max_parts: int = MAX_PARTS) -> None:
    """Call `on_part(part)` for every part of a multipart/form-data body, in order."""
    if not request.content_type.startswith("multipart/"):
        raise FormError("expected multipart/form-data")
    parts = 0
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                return
            parts += 1
            if parts > max_parts:
                raise FormError(f"more than {max_parts} form fields")
            if not hasattr(part, "read_chunk"):
                raise FormError("nested multipart is not accepted")
            if not identity_encoding(part.headers.get("Content-Encoding")):
                raise CompressedPart("compressed form fields are not accepted (Content-Encoding)")
            await on_part(part)
    except (ValueError, AssertionError, LookupError, HttpProcessingError) as exc:
        # aiohttp's parser refusing the body or a part's headers
        raise FormError(f"malformed multipart body ({exc.__class__.__name__})") from None


async def copy_part(part, write: Callable[[bytes], object], limit: int) -> int:
    """Feed the part's bytes to `write` chunk by chunk and return how many there were; PartTooLarge
    as soon as more than `limit` arrived (nothing past that chunk is read)."""
    size = 0
    while True:
        chunk = await part.read_chunk(min(limit + 1, CHUNK))
        if not chunk:
            return size
        size += len(chunk)
        if size > limit:
            raise PartTooLarge(size)
        write(chunk)


async def read_bounded(part, limit: int) -> bytes | None:
    """The part's bytes, or None when it is longer than `limit` (the excess is left unread)."""
    buf = bytearray()
    try:
        await copy_part(part, buf.extend, limit)
    except PartTooLarge:
        return None
    return bytes(buf)


MAX_TEXT_FIELD = 4096


async def read_upload(request: web.Request, max_bytes: int, file_field: str = "file") -> tuple[dict, bytes]:
    """An admin upload: its text fields and the file's bytes (413 past `max_bytes`, 422 without a
    file). Type and size rules are the media services' (one check for CLI and API)."""
    fields: dict[str, str] = {}
    files: list[bytes] = []

    async def on_part(part) -> None:
        if part.name == file_field:
            data = await read_bounded(part, max_bytes)
            if data is None:
                raise media.MediaTooLarge(f"the file is larger than {max_bytes // (1024 * 1024)} MB",
                                          {"max_bytes": max_bytes})
            files.append(data)
        elif part.name:
            raw = await read_bounded(part, MAX_TEXT_FIELD)
            if raw is None:
                raise auth.BadRequest(f"form field {part.name!r} is too long")
            fields[part.name] = raw.decode("utf-8", errors="replace")

    if not request.content_type.startswith("multipart/"):
        raise auth.BadRequest(f"expected multipart/form-data with a {file_field!r} field")
    try:
        await read_form(request, on_part)
    except CompressedPart as exc:
        raise media.UnsupportedMedia(str(exc)) from None
    except FormError as exc:
        raise auth.BadRequest(str(exc)) from None
    if not files:
        raise ValidationError({file_field: "a file is required"})
    return fields, files[-1]
