"""The slots over the admin API — list, read, configure, reset stats — and the provider
catalogue they are configured against. Rules live in photoslot/slots.py and stats.py."""
from __future__ import annotations

import datetime as dt

from aiohttp import web

from photoslot import media, provider_health, slots, stats
from photoslot.errors import ValidationError
from photoslot.providers import catalogue
from photoslot.server.keys import INGEST
from photoslot.server.toolkit import actor, answer, endpoint, json_body, q_str, read_upload

routes = web.RouteTableDef()

WRITABLE = {"name", "provider_id", "operation_id", "settings_json", "enabled", "updated_at", "version"}
# Fields of the Slot object a client may send back unchanged with a PUT; they are ignored.
READ_ONLY = {"id", "configured", "created_at", "last_reset_at", "ingest_url", "last_result_at", "recent_results"}


def etag(slot: dict) -> str:
    return f'"{slot["version"]}"'


def check_update_body(body: dict) -> None:
    """A PUT body names known fields only, and `enabled` is a boolean (the rest: slots.configure)."""
    unknown = set(body) - WRITABLE - READ_ONLY
    if unknown:
        raise ValidationError({k: "unknown field" for k in sorted(unknown)})
    if "enabled" in body and not isinstance(body["enabled"], bool):
        raise ValidationError({"enabled": "must be true or false"})


def precondition(body: dict, if_match: str | None) -> tuple[int | None, dt.datetime | None]:
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


@routes.get("/api/providers")
@endpoint("slots:read")
async def list_providers(request, ctx, claims):
    """The contract's envelope: {"providers": [...]} (each provider carries its whole catalogue)."""
    return answer({"providers": catalogue.as_list()})


@routes.get("/api/providers/health")
@endpoint("slots:read")
async def providers_health(request, ctx, claims):
    """Every provider's health, read from the shared table now (provider_health.board_view)."""
    return answer({"data": await provider_health.board_view(ctx, list(catalogue.CATALOGUE))})


@routes.get("/api/slots")
@endpoint("slots:read")
async def list_slots(request, ctx, claims):
    rows = await slots.search(ctx.db, provider_id=q_str(request, "provider_id"),
                              operation_id=q_str(request, "operation_id"), text=q_str(request, "search"))
    return answer({"data": [slots.api_view(ctx.cfg, s) for s in rows], "meta": {"total": len(rows)}})


@routes.get("/api/slots/{slot_id}")
@endpoint("slots:read")
async def get_slot(request, ctx, claims):
    slot_id = request.match_info["slot_id"]
    slot = await slots.get(ctx.db, slot_id)
    recent = await slots.recent_results(ctx.db, ctx.cfg, slot_id, now=ctx.clock.now())
    return answer({**slots.api_view(ctx.cfg, slot), "recent_results": recent}, headers={"ETag": etag(slot)})


@routes.put("/api/slots/{slot_id}")
@endpoint("slots:write")
async def put_slot(request, ctx, claims):
    slot_id = request.match_info["slot_id"]
    slots.check_slot_id(slot_id)
    body = await json_body(request)
    check_update_body(body)
    version, updated_at = precondition(body, request.headers.get("If-Match"))
    saved = await slots.configure(ctx.db, ctx.clock, slot_id, actor=actor(claims), source="http",
                                  name=body.get("name"), provider_id=body.get("provider_id"),
                                  operation_id=body.get("operation_id"), settings_json=body.get("settings_json"),
                                  enabled=body.get("enabled"), expected_version=version,
                                  expected_updated_at=updated_at)
    return answer({"id": saved["id"], "updated_at": saved["updated_at"], "version": saved["version"],
                   "slot": slots.api_view(ctx.cfg, saved)}, headers={"ETag": etag(saved)})


@routes.post("/api/slots/{slot_id}/reset_stats")
@endpoint("slots:write")
async def reset_slot_stats(request, ctx, claims):
    await stats.reset_stats(ctx, request.match_info["slot_id"], actor=actor(claims), source="http")
    return web.Response(status=204)


@routes.post("/api/slots/{slot_id}/test_shot")
@endpoint("slots:write")
async def test_shot(request, ctx, claims):
    """A rehearsal shot through the real queue and provider, without the ingest password (the
    admin's token stands in for it): the answer a booth would get, plus the job id and the time.
    One per slot at a time and `ingest.test_shots_per_minute` per admin (429 beyond)."""
    slot_id = slots.check_slot_id(request.match_info["slot_id"])
    _fields, data = await read_upload(request, media.max_upload_bytes(ctx.cfg))
    response, outcome, job_id, ms = await request.app[INGEST].rehearse(slot_id, data, admin=claims["sub"])
    response.headers["X-Test-Shot-Ms"] = str(ms)
    response.headers["X-Test-Shot-Outcome"] = outcome
    return response
