"""The admin API (`/api/*`, CONTRACT.md): JWT-protected, thin handlers over the service modules the
CLI uses too — validation, audit and state changes live there, once.

Every `/api/*` error answers `{"error": {"code", "message", "details"}}` with its status.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Awaitable, Callable

from aiohttp import web

from photoslot import auth, jobs, media, purge, slots, stats
from photoslot import settings as live_settings
from photoslot.clock import rfc3339
from photoslot.db import DatabaseUnavailable
from photoslot.errors import NotFound, PhotoslotError, ValidationError
from photoslot.logs import event
from photoslot.providers import catalogue

log = logging.getLogger("photoslot.admin")

_CTX = None  # the app key of the AppContext, set by setup_routes (app.py imports this module)


# ---------------------------------------------------------------- plumbing

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


Handler = Callable[[web.Request, object, dict | None], Awaitable[web.StreamResponse]]


def endpoint(permission: str | None):
    """Wrap a handler: verify the bearer token and its permission (None = public), pass ctx and claims."""

    def wrap(fn: Handler):
        async def handler(request: web.Request) -> web.StreamResponse:
            ctx = request.app[_CTX]
            claims = None
            if permission is not None:
                claims = auth.bearer_claims(ctx.cfg, request.headers.get("Authorization"), now=ctx.clock.now())
                auth.require(claims, permission)
            return await fn(request, ctx, claims)

        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler

    return wrap


def actor(claims: dict) -> str:
    return f"admin:{claims['sub']}"


def _unstorable_text(value) -> bool:
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


async def json_body(request: web.Request) -> dict:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError):
        raise auth.BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise auth.BadRequest("the body must be a JSON object")
    if _unstorable_text(body):
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


async def read_multipart(request: web.Request, max_bytes: int, file_field: str = "file") -> tuple[dict, bytes | None]:
    """Text fields and the file's bytes; stops reading at `max_bytes` (413) instead of buffering more."""
    if not request.content_type.startswith("multipart/"):
        raise auth.BadRequest("expected multipart/form-data with a 'file' field")
    fields: dict[str, str] = {}
    data: bytes | None = None
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not hasattr(part, "read_chunk"):
                raise auth.BadRequest("nested multipart is not accepted")
            if part.name == file_field:
                buf = bytearray()
                while True:
                    chunk = await part.read_chunk(256 * 1024)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > max_bytes:
                        raise media.MediaTooLarge(f"the file is larger than {max_bytes // (1024 * 1024)} MB",
                                                  {"max_bytes": max_bytes})
                data = bytes(buf)
            elif part.name:
                raw = bytearray()
                while True:
                    chunk = await part.read_chunk(8192)
                    if not chunk:
                        break
                    raw += chunk
                    if len(raw) > 4096:
                        raise auth.BadRequest(f"form field {part.name!r} is too long")
                fields[part.name] = raw.decode("utf-8", errors="replace")
    except (ValueError, AssertionError, LookupError) as exc:
        raise auth.BadRequest(f"malformed multipart body ({exc.__class__.__name__})") from None
    if data is None:
        raise ValidationError({file_field: "a file is required"})
    return fields, data  # type and size rules are the media services' (one check for CLI and API)


def _max_upload(ctx) -> int:
    return int(float(ctx.cfg.get("ingest.max_upload_mb")) * 1024 * 1024)


# ---------------------------------------------------------------- auth, catalogue, docs

@endpoint(None)
async def login(request, ctx, _):
    body = await json_body(request)
    token = await auth.login(ctx, body.get("username"), body.get("password"), client=request.remote)
    return answer(token)


@endpoint(None)
async def openapi_document(request, ctx, _):
    from photoslot.server.openapi import document

    return answer(document(ctx.cfg))


@endpoint("slots:read")
async def list_providers(request, ctx, claims):
    return answer(catalogue.as_list())


# ---------------------------------------------------------------- slots

def _etag(slot: dict) -> str:
    return f'"{slot["version"]}"'


@endpoint("slots:read")
async def list_slots(request, ctx, claims):
    rows = await slots.search(ctx.db, provider_id=q_str(request, "provider_id"),
                              operation_id=q_str(request, "operation_id"), text=q_str(request, "search"))
    return answer({"data": [slots.view(ctx.cfg, s) for s in rows]})


@endpoint("slots:read")
async def get_slot(request, ctx, claims):
    slot_id = request.match_info["slot_id"]
    slot = await slots.get(ctx.db, slot_id)
    view = {**slots.view(ctx.cfg, slot), "recent_results": await slots.recent_results(ctx.db, ctx.cfg, slot_id,
                                                                                     now=ctx.clock.now())}
    return answer(view, headers={"ETag": _etag(slot)})


_SLOT_WRITABLE = {"name", "provider_id", "operation_id", "settings_json", "enabled", "updated_at", "version"}
_SLOT_READ_ONLY = {"id", "configured", "created_at", "last_reset_at", "ingest_url", "last_result_at",
                   "recent_results"}


def _precondition(body: dict, if_match: str | None) -> tuple[int | None, dt.datetime | None]:
    """The optimistic check: `updated_at` or `version` in the body, or If-Match (our ETag or a time)."""
    version = body.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValidationError({"version": "must be an integer"})
    updated_at = None
    raw = body.get("updated_at")
    if raw is None and if_match:
        tag = if_match.strip().removeprefix("W/").strip('"')
        if tag.isascii() and tag.isdigit():  # str.isdigit alone admits "²", which int() refuses
            version = int(tag) if version is None else version
        else:
            raw = tag
    if raw is not None:
        updated_at = stats.parse_time(raw, "updated_at")
    return version, updated_at


@endpoint("slots:write")
async def put_slot(request, ctx, claims):
    slot_id = request.match_info["slot_id"]
    slots.check_slot_id(slot_id)
    body = await json_body(request)
    unknown = set(body) - _SLOT_WRITABLE - _SLOT_READ_ONLY
    if unknown:
        raise ValidationError({k: "unknown field" for k in sorted(unknown)})
    if "enabled" in body and not isinstance(body["enabled"], bool):
        raise ValidationError({"enabled": "must be true or false"})
    version, updated_at = _precondition(body, request.headers.get("If-Match"))
    saved = await slots.configure(ctx.db, ctx.clock, slot_id, actor=actor(claims), source="http",
                                  name=body.get("name"), provider_id=body.get("provider_id"),
                                  operation_id=body.get("operation_id"), settings_json=body.get("settings_json"),
                                  enabled=body.get("enabled"), expected_version=version,
                                  expected_updated_at=updated_at)
    return answer({"id": saved["id"], "updated_at": saved["updated_at"], "version": saved["version"],
                   "slot": slots.view(ctx.cfg, saved)}, headers={"ETag": _etag(saved)})


@endpoint("slots:write")
async def reset_slot_stats(request, ctx, claims):
    await stats.reset_stats(ctx, request.match_info["slot_id"], actor=actor(claims), source="http")
    return web.Response(status=204)


# ---------------------------------------------------------------- settings

def settings_view(s: live_settings.LiveSettings, cfg) -> dict:
    """GET /api/settings (CONTRACT.md): whether secrets are set, never their values."""
    flat = live_settings.public_view(s, cfg)
    window = s.sync_response_seconds
    return {
        "dslr_password": {"is_set": flat["ingest_password_set"], "updated_at": flat["ingest_password_updated_at"],
                          "updated_by": flat["ingest_password_updated_by"]},
        "provider_keys": flat["provider_keys"],
        "ingest": {"sync_response_timeout_sec": window, "ingest_ttl_sec": window, "bounds": list(s.bounds)},
        "media_cache": {"processed_media_ttl_hours": s.result_retention_hours, "public_link_ttl_sec": window},
    }


def _settings_request(body: dict) -> dict:
    """CONTRACT's nested PUT body → the keyword arguments of settings.update (per-field 422s)."""
    errors: dict[str, str] = {}
    out: dict = {}

    def section(name: str, allowed: set[str]) -> dict:
        value = body.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            errors[name] = "must be an object"
            return {}
        for key in set(value) - allowed:
            errors[f"{name}.{key}"] = "unknown or read-only field"
        return value

    for key in set(body) - {"dslr_password", "provider_keys", "ingest", "media_cache"}:
        errors[key] = "unknown field"
    pw = section("dslr_password", {"value"})
    if "value" in pw:
        out["ingest_password"] = pw["value"] if isinstance(pw["value"], str) else ""
    keys = section("provider_keys", set(live_settings.PROVIDER_NAMES))
    provider_keys = {}
    for name, item in keys.items():
        if name not in live_settings.PROVIDER_NAMES:
            continue
        if not isinstance(item, dict) or set(item) != {"value"}:
            errors[f"provider_keys.{name}"] = 'must be {"value": "<key>"}'
        else:
            provider_keys[name] = item["value"]
    if provider_keys:
        out["provider_keys"] = provider_keys
    ingest = section("ingest", {"sync_response_timeout_sec"})
    if "sync_response_timeout_sec" in ingest:
        value = ingest["sync_response_timeout_sec"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors["ingest.sync_response_timeout_sec"] = "must be a number of seconds"
        else:
            out["sync_response_seconds"] = value
    cache = section("media_cache", {"processed_media_ttl_hours"})
    if "processed_media_ttl_hours" in cache:
        value = cache["processed_media_ttl_hours"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors["media_cache.processed_media_ttl_hours"] = "must be a number of hours"
        else:
            out["result_retention_hours"] = value
    if errors:
        raise ValidationError(errors)
    return out


_SETTINGS_FIELD = {"sync_response_seconds": "ingest.sync_response_timeout_sec",
                   "result_retention_hours": "media_cache.processed_media_ttl_hours",
                   "ingest_password": "dslr_password.value"}


@endpoint("settings:read")
async def get_settings(request, ctx, claims):
    return answer(settings_view(await live_settings.load(ctx.db, ctx.cfg), ctx.cfg))


@endpoint("settings:write")
async def put_settings(request, ctx, claims):
    changes = _settings_request(await json_body(request))
    try:
        updated = await live_settings.update(ctx.db, ctx.cfg, ctx.clock, actor=actor(claims), source="http",
                                             **changes)
    except ValidationError as exc:  # name the fields as the request did
        raise ValidationError({_SETTINGS_FIELD.get(k, k): v for k, v in exc.details.items()}) from None
    return answer(settings_view(updated, ctx.cfg))


# ---------------------------------------------------------------- media

@endpoint("media:write")
async def register_media(request, ctx, claims):
    from photoslot import public_media

    fields, data = await read_multipart(request, _max_upload(ctx))
    job_id = fields.get("job_id") or None
    if job_id is not None:
        try:
            job_id = uuid.UUID(job_id)
        except ValueError:
            raise ValidationError({"job_id": "must be a UUID"}) from None
    out = await public_media.register(ctx, data=data, job_id=job_id, kind="upload")
    return answer(out, 201)


@endpoint("media:write")
async def register_template(request, ctx, claims):
    from photoslot import templates

    fields, data = await read_multipart(request, _max_upload(ctx))
    errors = {k: "is required" for k in ("slot_id", "setting_key") if not fields.get(k)}
    if errors:
        raise ValidationError(errors)
    replace = fields.get("replace", "false").lower() in ("1", "true", "yes", "on")
    out = await templates.register_for_slot(ctx, slot_id=fields["slot_id"], role=fields["setting_key"], data=data,
                                            label=fields.get("label") or None, replace=replace,
                                            actor=actor(claims), source="http")
    return answer(out, 201)


@endpoint("media:write")
async def delete_template(request, ctx, claims):
    from photoslot import templates

    await templates.unbind(ctx, request.match_info["template_id"], slot_id=q_str(request, "slot_id"), role=q_str(request, "setting_key"),
                           force=bool(q_bool(request, "force")), actor=actor(claims), source="http")
    return web.Response(status=204)


@endpoint("settings:write")
async def purge_cache(request, ctx, claims):
    body = await json_body(request)
    return answer(await purge.request_purge(ctx, body.get("scope"), actor=actor(claims), source="http"), 202)


# ---------------------------------------------------------------- jobs, stats, audit

@endpoint("stats:read")
async def list_jobs(request, ctx, claims):
    page, page_size = q_int(request, "page", 1), q_int(request, "page_size", 20)
    slot_id = q_str(request, "slot_id")
    if slot_id is not None:
        slots.check_slot_id(slot_id)
    rows, total = await jobs.admin_list(
        ctx.db, slot_id=slot_id, status=q_str(request, "status"), is_finalized=q_bool(request, "is_finalized"),
        failure_reason=q_str(request, "failure_reason"), page=page, page_size=page_size,
        sort_by=q_str(request, "sort_by") or "created_at", sort_order=q_str(request, "sort_order") or "desc")
    now = ctx.clock.now()
    return answer({"data": [jobs.admin_view(j, ctx.cfg, now) for j in rows],
                   "meta": {"page": page, "page_size": page_size, "total": total}})


@endpoint("stats:read")
async def get_job(request, ctx, claims):
    raw = request.match_info["job_id"]
    try:
        job = await jobs.get(ctx.db, uuid.UUID(raw))
    except ValueError:
        job = None
    if job is None:
        raise NotFound("no such job", {"job_id": raw})
    return answer(jobs.admin_view(job, ctx.cfg, ctx.clock.now()))


@endpoint("stats:read")
async def slot_stats(request, ctx, claims):
    return answer(await stats.slot_stats(ctx, request.match_info["slot_id"], from_=q_str(request, "from"),
                                         to=q_str(request, "to"), group_by=q_str(request, "group_by")))


@endpoint("stats:read")
async def global_stats(request, ctx, claims):
    return answer(await stats.global_stats(
        ctx, from_=q_str(request, "from"), to=q_str(request, "to"), group_by=q_str(request, "group_by"),
        page=q_int(request, "page", 1), page_size=q_int(request, "page_size", 20),
        sort_by=q_str(request, "sort_by") or "period_start", sort_order=q_str(request, "sort_order") or "asc"))


@endpoint("settings:read")
async def audit_log(request, ctx, claims):
    from photoslot import audit

    limit = q_int(request, "limit", 100)
    if not 1 <= limit <= 1000:
        raise ValidationError({"limit": "must be an integer from 1 to 1000"})
    return answer({"data": await audit.entries(ctx.db, limit=limit, action=q_str(request, "action"))})


def setup_routes(app: web.Application) -> None:
    """Register the admin API, the public result links, and the /api error middleware."""
    global _CTX
    from photoslot.server import public_results
    from photoslot.server.app import CTX

    _CTX = CTX
    app.middlewares.append(api_errors)
    r = app.router
    r.add_post("/api/login", login)
    r.add_get("/api/openapi.json", openapi_document)
    r.add_get("/api/providers", list_providers)
    r.add_get("/api/slots", list_slots)
    r.add_get("/api/slots/{slot_id}", get_slot)
    r.add_put("/api/slots/{slot_id}", put_slot)
    r.add_post("/api/slots/{slot_id}/reset_stats", reset_slot_stats)
    r.add_get("/api/settings", get_settings)
    r.add_put("/api/settings", put_settings)
    r.add_post("/api/media/register", register_media)
    r.add_post("/api/template-media/register", register_template)
    r.add_delete("/api/template-media/{template_id}", delete_template)
    r.add_post("/api/media/cache/purge", purge_cache)
    r.add_get("/api/jobs", list_jobs)
    r.add_get("/api/jobs/{job_id}", get_job)
    r.add_get("/api/stats/global", global_stats)
    r.add_get("/api/stats/{slot_id}", slot_stats)
    r.add_get("/api/audit", audit_log)
    public_results.setup_routes(app)
