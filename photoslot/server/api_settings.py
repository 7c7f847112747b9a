"""Live settings over the admin API: GET shows whether secrets are set (never their values),
PUT changes them; the ingest password can be revealed to an admin handing it to a new booth, or
generated anew (POST only: the value travels in an answer body, never in a URL, and neither is
ever cached). The rules (bounds, hashing, sealing, audit) live in photoslot/settings.py; this
module only translates between the API's nested shape and the service functions."""
from __future__ import annotations

from aiohttp import web

from photoslot import settings as live_settings
from photoslot.errors import ValidationError
from photoslot.server.toolkit import actor, answer, endpoint, json_body

routes = web.RouteTableDef()

# settings.update's keyword → the field as the PUT body names it (for per-field 422s)
REQUEST_FIELD = {"sync_response_seconds": "ingest.sync_response_timeout_sec",
                 "result_retention_hours": "media_cache.processed_media_ttl_hours",
                 "ingest_password": "dslr_password.value"}


def _whole(value):
    """A whole number of seconds or hours as an integer (the contract types them so); a fraction stays."""
    return int(value) if float(value).is_integer() else value


def settings_view(s: live_settings.LiveSettings, cfg) -> dict:
    """The Settings object of GET /api/settings (docs/API.md): whether secrets are set, never their values."""
    flat = live_settings.public_view(s, cfg)
    window = _whole(s.sync_response_seconds)
    # a key's `source` is named only when there is one: the contract's extra fields are strings,
    # numbers or booleans, never null
    keys = {name: {k: v for k, v in state.items() if k != "source" or v is not None}
            for name, state in flat["provider_keys"].items()}
    return {
        "dslr_password": {"is_set": flat["ingest_password_set"], "updated_at": flat["ingest_password_updated_at"],
                          "updated_by": flat["ingest_password_updated_by"],
                          "revealable": flat["ingest_password_revealable"]},
        "provider_keys": keys,
        "ingest": {"sync_response_timeout_sec": window, "ingest_ttl_sec": window,
                   "bounds": [_whole(b) for b in s.bounds]},
        "media_cache": {"processed_media_ttl_hours": _whole(s.result_retention_hours), "public_link_ttl_sec": window},
    }


def _number(value, name: str, unit: str, errors: dict):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors[name] = f"must be a number of {unit}"
        return None
    return value


def settings_request(body: dict) -> dict:
    """The nested PUT body → the keyword arguments of settings.update (per-field 422s)."""
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
    provider_keys = {}
    for name, item in section("provider_keys", set(live_settings.PROVIDER_NAMES)).items():
        if name not in live_settings.PROVIDER_NAMES:
            continue
        # the contract's {"api_key": …}; {"value": …} is photoslot's earlier spelling, still taken
        if not isinstance(item, dict) or len(item) != 1 or not set(item) <= {"api_key", "value"}:
            errors[f"provider_keys.{name}"] = 'must be {"api_key": "<key>"}'
        else:
            provider_keys[name] = next(iter(item.values()))
    if provider_keys:
        out["provider_keys"] = provider_keys
    ingest = section("ingest", {"sync_response_timeout_sec"})
    if "sync_response_timeout_sec" in ingest:
        value = _number(ingest["sync_response_timeout_sec"], "ingest.sync_response_timeout_sec", "seconds", errors)
        if value is not None:
            out["sync_response_seconds"] = value
    cache = section("media_cache", {"processed_media_ttl_hours"})
    if "processed_media_ttl_hours" in cache:
        value = _number(cache["processed_media_ttl_hours"], "media_cache.processed_media_ttl_hours", "hours", errors)
        if value is not None:
            out["result_retention_hours"] = value
    if errors:
        raise ValidationError(errors)
    return out


@routes.get("/api/settings")
@endpoint("settings:read")
async def get_settings(request, ctx, claims):
    return answer(settings_view(await live_settings.load(ctx.db, ctx.cfg), ctx.cfg))


@routes.put("/api/settings")
@endpoint("settings:write")
async def put_settings(request, ctx, claims):
    changes = settings_request(await json_body(request))
    try:
        updated = await live_settings.update(ctx.db, ctx.cfg, ctx.clock, actor=actor(claims), source="http",
                                             **changes)
    except ValidationError as exc:  # name the fields as the request did
        raise ValidationError({REQUEST_FIELD.get(k, k): v for k, v in exc.details.items()}) from None
    return answer(settings_view(updated, ctx.cfg))


async def _password_answer(ctx, value: str) -> web.Response:
    row = await ctx.db.fetchone("setting_get", key=live_settings.PASSWORD_KEY)
    return answer({"value": value, "updated_at": row["updated_at"], "updated_by": row["updated_by"]})


@routes.post("/api/settings/ingest-password/reveal")
@endpoint("settings:write")
async def reveal_ingest_password(request, ctx, claims):
    """The current ingest password, for a new booth (audited; the value is never logged)."""
    shown = await live_settings.reveal_ingest_password(ctx.db, ctx.cfg, ctx.clock, actor=actor(claims), source="http")
    return answer({"value": shown["value"], "updated_at": shown["updated_at"], "updated_by": shown["updated_by"]})


@routes.post("/api/settings/ingest-password/generate")
@endpoint("settings:write")
async def generate_ingest_password(request, ctx, claims):
    """A new ingest password made by photoslot, stored and returned once (every booth needs it)."""
    value = await live_settings.generate_ingest_password(ctx.db, ctx.cfg, ctx.clock, actor=actor(claims),
                                                         source="http")
    return await _password_answer(ctx, value)
