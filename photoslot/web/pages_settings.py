"""Settings (the response window, retention, the ingest password, provider keys, the media purge).
Every change is `settings.update` or `purge.request_purge` — the functions behind
`PUT /api/settings`, `POST /api/media/cache/purge` and `photoslot settings set` — so the bounds,
the hashing and the audit entry are theirs."""
from __future__ import annotations

from aiohttp import web

from photoslot import public_address, purge, studio_time
from photoslot import settings as live_settings
from photoslot.errors import ValidationError
from photoslot.passwords import generate_password
from photoslot.web import render
from photoslot.web.session import action, form_of, page

routes = web.RouteTableDef()


async def render_settings(request, ctx, session, *, status=200, errors=None, notice=None, new_password=None,
                          values=None):
    s = await live_settings.load(ctx.db, ctx.cfg)
    return render.page(request, "settings.html", session, status=status, active="settings", title="Settings",
                       s=s, view=live_settings.public_view(s, ctx.cfg), errors=errors or {}, notice=notice,
                       new_password=new_password, values=values or {}, providers=live_settings.PROVIDER_NAMES,
                       can_write=session.can("settings:write"), min_password=live_settings.INGEST_PASSWORD_MIN,
                       address=await public_address.load(ctx.db, ctx.cfg), studio_zone=await studio_time.load(ctx.db),
                       zones=studio_time.common_zones())


@routes.get("/admin/settings")
@page("settings:read")
async def settings_page(request, ctx, session):
    _ = render.translate(request)
    notice = {"saved": _("Saved."), "purge": _("Purge queued; the sweeper carries it out within seconds."),
              "studio": _("Saved. Every address handed out follows it from now on.")}.get(request.query.get("done", ""))
    return await render_settings(request, ctx, session, notice=notice)


def _number(raw: str):
    raw = raw.strip().replace(",", ".")
    if raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        return raw  # settings.update names the field


@routes.post("/admin/settings")
@action("settings:write")
async def save_settings(request, ctx, session):
    """One form: the window, the retention, optionally a new ingest password (typed, or generated
    when "generate" is ticked — shown once on the answer page, never again)."""
    form = form_of(request)
    password = str(form.get("ingest_password", ""))
    generated = None
    if form.get("generate") == "on":
        generated = password = generate_password(live_settings.GENERATED_PASSWORD_BYTES)
    keys = {name: str(form.get(f"key.{name}", "")).strip() for name in live_settings.PROVIDER_NAMES}
    current = await live_settings.load(ctx.db, ctx.cfg)
    # The form shows every value; only the ones the admin changed are sent (and audited), so a
    # password rotation does not also pin the window and the retention to what they are now.
    window = _number(str(form.get("sync_response_seconds", "")))
    retention = _number(str(form.get("result_retention_hours", "")))
    window = None if window == current.sync_response_seconds else window
    retention = None if retention == current.result_retention_hours else retention
    provider_keys = {k: v for k, v in keys.items() if v} or None
    if window is None and retention is None and not password and provider_keys is None:
        _ = render.translate(request)
        return await render_settings(request, ctx, session, notice=_("Nothing to change."))
    try:
        await live_settings.update(ctx.db, ctx.cfg, ctx.clock, actor=session.actor, source="web",
                                   sync_response_seconds=window, result_retention_hours=retention,
                                   ingest_password=password or None,
                                   provider_keys=provider_keys)
    except ValidationError as exc:
        values = {"sync_response_seconds": form.get("sync_response_seconds", ""),
                  "result_retention_hours": form.get("result_retention_hours", "")}
        return await render_settings(request, ctx, session, status=422, errors=exc.details, values=values)
    if generated:  # shown on this answer only; a typed one the admin knows already
        _ = render.translate(request)
        return await render_settings(request, ctx, session, notice=_("Saved."), new_password=generated)
    raise web.HTTPSeeOther("/admin/settings?done=saved")


@routes.post("/admin/settings/studio")
@action("settings:write")
async def save_studio(request, ctx, session):
    """The studio's public address (unless the config file fixes it) and time zone: `settings.update`."""
    form = form_of(request)
    address = None if ctx.cfg.get("server.public_base_url") else str(form.get("public_base_url", ""))
    zone = str(form.get("time_zone", ""))
    current_address = await public_address.load(ctx.db, ctx.cfg)
    current_zone = await studio_time.load(ctx.db)
    if address is not None and (address.strip().rstrip("/") == (current_address.url if current_address.source == "setting" else "")):
        address = None  # unchanged: not sent, not audited
    if zone.strip() == (current_zone.name if current_zone.source == "setting" else ""):
        zone = None
    if address is None and zone is None:
        _ = render.translate(request)
        return await render_settings(request, ctx, session, notice=_("Nothing to change."))
    try:
        await live_settings.update(ctx.db, ctx.cfg, ctx.clock, actor=session.actor, source="web",
                                   public_base_url=address, time_zone=zone)
    except ValidationError as exc:
        return await render_settings(request, ctx, session, status=422, errors=exc.details,
                                     values={"public_base_url": form.get("public_base_url", ""),
                                             "time_zone": form.get("time_zone", "")})
    raise web.HTTPSeeOther("/admin/settings?done=studio")


@routes.post("/admin/settings/purge")
@action("settings:write")
async def purge_media(request, ctx, session):
    form = form_of(request)
    if form.get("confirm") != "on":
        _ = render.translate(request)
        return await render_settings(request, ctx, session, status=422,
                                     errors={"purge": "Tick the confirmation to purge."})
    await purge.request_purge(ctx, str(form.get("scope", "")), actor=session.actor, source="web")
    raise web.HTTPSeeOther("/admin/settings?done=purge")
