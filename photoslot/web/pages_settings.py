"""Settings (the response window, retention, the ingest password, provider keys, the public
address and time zone, the media purge). Every change is `settings.update`,
`settings.generate_ingest_password`, `settings.reveal_ingest_password` or `purge.request_purge` —
the functions behind `PUT /api/settings`, `POST /api/settings/ingest-password/…`, `POST
/api/media/cache/purge` and `photoslot settings …` — so the bounds, the hashing, the sealing and
the audit entry are theirs.

Every form answers with a redirect (POST/Redirect/GET): a reload never saves, generates or reveals
again. A password generated or revealed travels to the page that shows it in a one-time flash kept
on the server (`Flashes`), named by a short-lived cookie bound to the session: never in a URL,
shown once, gone on reload."""
from __future__ import annotations

import secrets
import time
from collections import OrderedDict

from aiohttp import web

from photoslot import public_address, purge, studio_time
from photoslot import settings as live_settings
from photoslot.errors import PhotoslotError, ValidationError
from photoslot.web import render
from photoslot.web.session import action, form_of, is_tls, page

routes = web.RouteTableDef()

FLASH_COOKIE = "photoslot_flash"
FLASH_SECONDS = 120
SETTINGS_PATH = "/admin/settings"


class Flashes:
    """One-time values for the next page of the same session, kept in this process's memory."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._items: OrderedDict[str, tuple[str, float, dict]] = OrderedDict()  # id -> (session, until, value)

    def put(self, session_id: str, value: dict) -> str:
        now = time.monotonic()
        for key in [k for k, (_s, until, _v) in self._items.items() if until < now]:
            del self._items[key]
        key = secrets.token_urlsafe(18)
        self._items[key] = (session_id, now + FLASH_SECONDS, value)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)
        return key

    def take(self, key: str | None, session_id: str) -> dict | None:
        """The value, once, for the session that put it."""
        if not key:
            return None
        item = self._items.pop(key, None)
        if item is None or item[0] != session_id or item[1] < time.monotonic():
            return None
        return item[2]


FLASHES = Flashes()


def _session_id(session) -> str:
    """The web session (kept across its token's renewals), or the token for an API-made one."""
    return str(session.claims.get("sid") or session.claims["jti"])


def _with_flash(request, session, value: dict) -> web.HTTPSeeOther:
    response = web.HTTPSeeOther(SETTINGS_PATH)
    response.set_cookie(FLASH_COOKIE, FLASHES.put(_session_id(session), value), max_age=FLASH_SECONDS,
                        path=SETTINGS_PATH, httponly=True, samesite="Strict", secure=is_tls(request))
    return response


async def render_settings(request, ctx, session, *, status=200, errors=None, notice=None, shown=None,
                          values=None):
    s = await live_settings.load(ctx.db, ctx.cfg)
    return render.page(request, "settings.html", session, status=status, active="settings", title="Settings",
                       s=s, view=live_settings.public_view(s, ctx.cfg), errors=errors or {}, notice=notice,
                       shown=shown, values=values or {}, providers=live_settings.PROVIDER_NAMES,
                       can_write=session.can("settings:write"), min_password=live_settings.INGEST_PASSWORD_MIN,
                       address=await public_address.load(ctx.db, ctx.cfg), studio_zone=await studio_time.load(ctx.db),
                       zones=studio_time.common_zones())


@routes.get(SETTINGS_PATH)
@page("settings:read")
async def settings_page(request, ctx, session):
    _ = render.translate(request)
    notice = {"saved": _("Saved."), "purge": _("Purge queued; the sweeper carries it out within seconds."),
              "studio": _("Saved. Every address handed out follows it from now on."),
              "nothing": _("Nothing to change.")}.get(request.query.get("done", ""))
    shown = FLASHES.take(request.cookies.get(FLASH_COOKIE), _session_id(session))
    response = await render_settings(request, ctx, session, notice=notice, shown=shown)
    if FLASH_COOKIE in request.cookies:
        response.del_cookie(FLASH_COOKIE, path=SETTINGS_PATH)
    return response


@routes.post(SETTINGS_PATH + "/ingest-password/generate")
@action("settings:write")
async def generate_ingest_password(request, ctx, session):
    """The button **Generate a new ingest password**: stored at once, shown once on the next page."""
    value = await live_settings.generate_ingest_password(ctx.db, ctx.cfg, ctx.clock, actor=session.actor,
                                                         source="web")
    raise _with_flash(request, session, {"kind": "generated", "value": value})


@routes.post(SETTINGS_PATH + "/ingest-password/reveal")
@action("settings:write")
async def reveal_ingest_password(request, ctx, session):
    """Show the current ingest password (to give a new booth; audited), once, on the next page."""
    try:
        shown = await live_settings.reveal_ingest_password(ctx.db, ctx.cfg, ctx.clock, actor=session.actor,
                                                           source="web")
    except PhotoslotError as exc:
        _ = render.translate(request)
        return await render_settings(request, ctx, session, status=exc.http_status,
                                     errors={"reveal": _("An older photoslot kept only a hash of this password: it can be shown after a booth's next shot with it, or generate a new one.")
                                             if exc.http_status == 409 else _("No ingest password is set.")})
    raise _with_flash(request, session, {"kind": "revealed", "value": shown["value"]})


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
    """One form: the window, the retention, optionally a new typed ingest password (with its
    confirmation), provider keys."""
    form = form_of(request)
    password = str(form.get("ingest_password", ""))
    confirmation = str(form.get("ingest_password_confirm", ""))
    keys = {name: str(form.get(f"key.{name}", "")).strip() for name in live_settings.PROVIDER_NAMES}
    current = await live_settings.load(ctx.db, ctx.cfg)
    # The form shows every value; only the ones the admin changed are sent (and audited), so a
    # password rotation does not also pin the window and the retention to what they are now.
    window = _number(str(form.get("sync_response_seconds", "")))
    retention = _number(str(form.get("result_retention_hours", "")))
    window = None if window == current.sync_response_seconds else window
    retention = None if retention == current.result_retention_hours else retention
    provider_keys = {k: v for k, v in keys.items() if v} or None
    values = {"sync_response_seconds": form.get("sync_response_seconds", ""),
              "result_retention_hours": form.get("result_retention_hours", "")}
    if (password or confirmation) and password != confirmation:  # a typo would lock every booth out
        return await render_settings(request, ctx, session, status=422, values=values,
                                     errors={"ingest_password_confirm": "The two passwords differ; type the same one in both fields."})
    if window is None and retention is None and not password and provider_keys is None:
        raise web.HTTPSeeOther("/admin/settings?done=nothing")
    try:
        await live_settings.update(ctx.db, ctx.cfg, ctx.clock, actor=session.actor, source="web",
                                   sync_response_seconds=window, result_retention_hours=retention,
                                   ingest_password=password or None,
                                   provider_keys=provider_keys)
    except ValidationError as exc:
        return await render_settings(request, ctx, session, status=422, errors=exc.details, values=values)
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
