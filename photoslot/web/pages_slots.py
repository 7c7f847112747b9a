"""The Slots page (15 live cards and the first-run checklist) and a Slot's page: the form built from
the provider catalogue (every operation's fields, templates picked or uploaded in the same form),
the ingest URL with the DSLR Remote Pro settings and the public address's warnings, the test shot,
recent results, the slot's figures.

Saving calls `templates.save_slot` (the images checked and stored, then `slots.configure`: one
validation, all or nothing), a test shot `IngestHandler.rehearse` — the functions behind
`PUT /api/slots/{id}`, `POST /api/template-media/register` and `POST /api/slots/{id}/test_shot`.
Every POST answers with a redirect (a reload never saves or shoots twice), except a refused save,
which shows the form again as it was typed, each message next to its field."""
from __future__ import annotations

import base64
import collections
import datetime as dt
import json
import secrets as pysecrets
import time

from aiohttp import web

from photoslot import (checklist, media, overview, provider_status, public_address, slot_report, slots, stats,
                       studio_time, templates)
from photoslot import settings as live_settings
from photoslot.errors import Conflict, ValidationError
from photoslot.providers import catalogue
from photoslot.server.keys import INGEST
from photoslot.web import render
from photoslot.web.session import ZONE, Upload, action, form_of, page

routes = web.RouteTableDef()
DEFAULT = ("gemini", "image_edit")


@routes.get("/admin/")
@page("slots:read")
async def slots_page(request, ctx, session):
    cards = await overview.slot_cards(ctx, request[ZONE])
    steps = await checklist.steps(ctx)
    address = await public_address.load(ctx.db, ctx.cfg)
    return render.page(request, "slots.html", session, active="slots", title="Slots", cards=cards,
                       steps=[] if checklist.finished(steps) else steps, address=address)


# ---------------------------------------------------------------- the form <-> settings_json

def op_key(provider_id: str, operation_id: str) -> str:
    return f"{provider_id}/{operation_id}"


def chosen_operation(provider_id, operation_id):
    """The catalogue's provider and operation for the form's choice; an unknown provider or an
    operation it has not fall back to the first (the save names the field in its 422)."""
    provider = catalogue.CATALOGUE.get(str(provider_id or "")) or catalogue.CATALOGUE[DEFAULT[0]]
    operation = provider.operations.get(str(operation_id or "")) or next(iter(provider.operations.values()))
    return provider, operation


def form_settings(form, provider, operation) -> dict:
    """The slot's settings_json from the posted form, typed by the catalogue; a value that is not
    of its type goes through as typed, so `slots.configure` names the field in its 422. Only the
    chosen operation's fields are sent by the page (the others are disabled)."""
    settings: dict = {}
    prompt = str(form.get("prompt", "")).strip()
    if operation.uses_prompt and prompt:
        settings["prompt"] = prompt
    params = {}
    for name, spec in operation.params.items():
        if spec.type == "bool":
            params[name] = form.get(f"param.{name}") == "on"
            continue
        raw = str(form.get(f"param.{name}", "")).strip()
        if raw != "":
            params[name] = catalogue.coerce_param(provider.id, operation.id, name, raw)
    if params:
        settings["params"] = params
    bound = {role: str(form.get(f"template.{role}", "")).strip() for role in operation.roles}
    bound = {role: ref for role, ref in bound.items() if ref}
    if bound:
        settings["templates"] = bound
    # empty = the booth gets back the format it sent (the slot has no output_format); a named
    # format is stored as chosen, JPEG included, so the page never says one thing and does another
    fmt = str(form.get("output_format", "")).strip()
    if fmt:
        settings["output_format"] = fmt
    return settings


def form_uploads(form, operation) -> tuple[dict, set]:
    """({role: (image bytes, label)}, roles whose bound template may be replaced) from the form."""
    uploads = {}
    for role in operation.roles:
        file = form.get(f"upload.{role}")
        if isinstance(file, Upload):
            label = str(form.get(f"upload_label.{role}", "")).strip() or file.filename or None
            uploads[role] = (file.data, label[:templates.MAX_LABEL] if label else None)
    replace = {role for role in operation.roles if form.get(f"replace.{role}") == "on"}
    return uploads, replace


def echo_of(form, provider, operation) -> dict:
    """What was typed, to show it again as it was."""
    key = op_key(provider.id, operation.id)
    params = {k[6:]: v for k, v in form.items() if k.startswith("param.") and isinstance(v, str)}
    for name, spec in operation.params.items():
        if spec.type == "bool" and name not in params:
            params[name] = ""  # an unticked box sends nothing: shown unticked, not as its default
    return {"name": str(form.get("name", "")), "prompt": str(form.get("prompt", "")),
            "enabled": form.get("enabled") == "on", "output_format": str(form.get("output_format", "")),
            "params": {key: params},
            "templates": {key: {k[9:]: v for k, v in form.items() if k.startswith("template.") and isinstance(v, str)}},
            "labels": {k[13:]: v for k, v in form.items() if k.startswith("upload_label.") and isinstance(v, str)},
            "replace": {k[8:] for k, v in form.items() if k.startswith("replace.") and v == "on"},
            "provider_id": provider.id, "operation_id": operation.id}


def saved_values(slot: dict) -> dict:
    settings = slot["settings_json"] or {}
    provider, operation = chosen_operation(slot["provider_id"] or DEFAULT[0], slot["operation_id"] or DEFAULT[1])
    key = op_key(provider.id, operation.id)
    return {"name": slot["name"] or "", "prompt": settings.get("prompt", ""),
            "enabled": slot["enabled"] or not slots.is_configured(slot),
            "output_format": settings.get("output_format", ""),
            "params": {key: {k: ("on" if v is True else "" if v is False else v)
                             for k, v in (settings.get("params") or {}).items()}},
            "templates": {key: dict(settings.get("templates") or {})}, "labels": {}, "replace": set(),
            "provider_id": provider.id, "operation_id": operation.id}


# ---------------------------------------------------------------- test shots, shown once after their redirect

class RecentShots:
    """A test shot's outcome between its POST and the page the redirect shows (POST/Redirect/GET):
    in this process's memory, the newest MAX for TTL — the photo itself is gone with its job."""
    MAX = 32
    TTL = 900.0

    def __init__(self) -> None:
        self._shots: collections.OrderedDict[str, tuple[float, dict]] = collections.OrderedDict()

    def put(self, shot: dict) -> str:
        key = pysecrets.token_urlsafe(12)
        self._shots[key] = (time.monotonic(), shot)
        while len(self._shots) > self.MAX:
            self._shots.popitem(last=False)
        return key

    def get(self, key: str | None) -> dict | None:
        found = self._shots.get(key or "")
        if found is None or time.monotonic() - found[0] > self.TTL:
            return None
        return found[1]


SHOTS = web.AppKey("photoslot_test_shots", RecentShots)


# ---------------------------------------------------------------- the Slot page

async def slot_context(request, ctx, session, slot_id: str, *, echo: dict | None = None, errors: dict | None = None,
                       conflict: bool = False) -> dict:
    slot = await slots.get(ctx.db, slot_id)
    view = slots.view(ctx.cfg, slot)
    values = echo or saved_values(slot)
    provider, operation = chosen_operation(values["provider_id"], values["operation_id"])
    zone = request[ZONE]
    now = ctx.clock.now()
    day = studio_time.day_start(now, zone)
    recent = await slots.recent_results(ctx.db, ctx.cfg, slot_id, now=now)
    today = await stats.slot_stats(ctx, slot_id, from_=day, to=now + dt.timedelta(seconds=1), group_by="day",
                                   tz=zone.sql)
    week = await stats.slot_stats(ctx, slot_id, from_=now - dt.timedelta(days=7), to=now, group_by="day", tz=zone.sql)
    refused = await slot_report.refused_by_reason(ctx, start=day, end=now + dt.timedelta(seconds=1), slot_id=slot_id)
    window = await ctx.db.fetchone("ingest_context", slot_id=slot_id)
    live = live_settings.from_rows(ctx.cfg, (window or {}).get("live_settings") or {})
    saved_provider = slot["provider_id"] if slots.is_configured(slot) else None
    return {
        "slot": view, "catalogue": catalogue.CATALOGUE, "provider": provider, "operation": operation,
        "op_key": op_key, "values": values, "errors": errors or {}, "conflict": conflict,
        "all_templates": await templates.list_all(ctx.db), "recent": recent, "now": now,
        "today": today["summary"], "week": week["summary"], "refused_today": refused,
        "formats": catalogue.OUTPUT_FORMATS, "window_s": live.sync_response_seconds,
        "prompt_max": catalogue.PROMPT_MAX_CHARS,
        "address": await public_address.load(ctx.db, ctx.cfg),
        "key_missing": await provider_status.key_missing(ctx.db, ctx.cfg, saved_provider),
        "provider_down": saved_provider is not None and ctx.health.get(saved_provider).is_down,
        "can_write": session.can("slots:write"), "can_upload": session.can("media:write"),
    }


async def render_slot(request, ctx, session, slot_id: str, *, status: int = 200, notice: str | None = None,
                      shot: dict | None = None, shot_gone: bool = False, **kw) -> web.Response:
    context = await slot_context(request, ctx, session, slot_id, **kw)
    return render.page(request, "slot.html", session, status=status, active="slots",
                       raw_title=f"{context['slot']['id']} · {context['slot']['name'] or ''}".rstrip(" ·"),
                       notice=notice, shot=shot, shot_gone=shot_gone, **context)


@routes.get(r"/admin/slots/{slot_id:slot-\d{3}}")
@page("slots:read")
async def slot_page(request, ctx, session):
    _ = render.translate(request)
    notice = _("Saved.") if request.query.get("done") == "saved" else None
    asked_provider, asked_operation = request.query.get("provider_id"), request.query.get("operation_id")
    if asked_provider is not None and asked_provider not in catalogue.CATALOGUE:
        # an address typed or kept from elsewhere: the form as saved, and why (never the text asked for)
        notice = _("The address names a provider that does not exist; the slot's own is shown.")
    elif asked_operation is not None and not any(asked_operation in p.operations for p in catalogue.CATALOGUE.values()):
        notice = _("The address names an operation that does not exist; the slot's own is shown.")
    shot = None
    if "shot" in request.query:
        shot = request.app[SHOTS].get(request.query["shot"])
    return await render_slot(request, ctx, session, request.match_info["slot_id"], notice=notice, shot=shot,
                             shot_gone="shot" in request.query and shot is None)


@routes.post(r"/admin/slots/{slot_id:slot-\d{3}}")
@action("slots:write")
async def save_slot(request, ctx, session):
    slot_id = request.match_info["slot_id"]
    form = form_of(request)
    provider_id, operation_id = str(form.get("provider_id", "")), str(form.get("operation_id", ""))
    provider, operation = chosen_operation(provider_id, operation_id)
    echo = echo_of(form, provider, operation)
    if form.get("show"):  # without JavaScript: the chosen operation's fields, what was typed kept; nothing saved
        return await render_slot(request, ctx, session, slot_id, echo=echo)
    uploads, replace = form_uploads(form, operation)
    if uploads and not session.can("media:write"):
        raise ValidationError({f"template_upload.{next(iter(uploads))}": "this session may not upload templates"})
    try:
        version = int(str(form.get("version", "")))
    except ValueError:
        version = None
    try:
        await templates.save_slot(ctx, slot_id, name=echo["name"], provider_id=provider_id, operation_id=operation_id,
                                  settings_json=form_settings(form, provider, operation), enabled=echo["enabled"],
                                  expected_version=version, uploads=uploads, replace=replace, actor=session.actor,
                                  source="web")
    except ValidationError as exc:
        errors = dict(exc.details)
        for role in uploads:  # nothing was stored: a file chosen has to be chosen again
            errors.setdefault(f"template_upload.{role}", "not stored, as nothing was saved: choose the image again")
        return await render_slot(request, ctx, session, slot_id, status=422, echo=echo, errors=errors)
    except Conflict:
        return await render_slot(request, ctx, session, slot_id, status=409, echo=echo, conflict=True)
    raise web.HTTPSeeOther(f"/admin/slots/{slot_id}?done=saved")


@routes.get("/admin/templates/{template_id}/image")
@page("slots:read")
async def template_image(request, ctx, session):
    """A template's preview (signed-in admins only): a small JPEG made on first view and kept beside
    the template (the sweeper keeps it while the template lives), not the template itself, which
    may be megabytes — unless `full` is asked for (the Templates page's link)."""
    row = await templates.get(ctx.db, request.match_info["template_id"])
    if request.query.get("full") == "1":
        ext = media.MIME_EXT.get(row["mime"], "bin")
        return web.FileResponse(row["file_path"], headers={
            "Content-Type": row["mime"], "Cache-Control": "private, max-age=3600",
            "Content-Disposition": f'inline; filename="template-{row["id"][:8]}.{ext}"'})
    preview = await media.thumbnail(row["file_path"], ctx.media.thumbnail_path(row["file_path"]))
    return web.FileResponse(preview, headers={"Content-Type": "image/jpeg", "Cache-Control": "private, max-age=3600"})


# Outcomes whose photo was never accepted as a photo: no preview is made of it.
PHOTO_REFUSED = frozenset({"unsupported_media_type", "invalid_image", "payload_too_large", "invalid_request",
                           "test_shot_running", "too_many_test_shots"})


async def preview_data_url(data: bytes) -> str | None:
    """A small JPEG of the test photo, inline in the page (the upload itself is deleted with its
    job): made off the event loop, within the booth's pixel cap, like a thumbnail."""
    try:
        small = await media.off_loop(media.preview_jpeg, data, lane="thumbnails")
    except Exception:  # not an image we read: the shot's own answer says why
        return None
    return "data:image/jpeg;base64," + base64.b64encode(small).decode("ascii")


@routes.post(r"/admin/slots/{slot_id:slot-\d{3}}/test-shot")
@action("slots:write")
async def test_shot(request, ctx, session):
    """Runs the shot, keeps its outcome for the page the redirect shows (a reload shows it again,
    never shoots again)."""
    slot_id = slots.check_slot_id(request.match_info["slot_id"])
    photo = form_of(request).get("photo")
    if not isinstance(photo, Upload):
        raise ValidationError({"photo": "choose a photo for the test shot"})
    slot = await slots.get(ctx.db, slot_id)
    answer, outcome, job_id, ms = await request.app[INGEST].rehearse(slot_id, photo.data, admin=session.user)
    original = None if outcome in PHOTO_REFUSED else await preview_data_url(photo.data)
    shot = {"ok": answer.status == 200, "status": answer.status, "reason": outcome, "ms": ms, "slot_id": slot_id,
            "job_id": str(job_id) if job_id else None, "original": original, "detail": None,
            "at": ctx.clock.now(), "provider": catalogue.CATALOGUE[slot["provider_id"]].name
            if slot["provider_id"] in catalogue.CATALOGUE else None,
            "key_missing": await provider_status.key_missing(ctx.db, ctx.cfg, slot["provider_id"])}
    if answer.status != 200:
        try:
            shot["detail"] = json.loads(answer.body).get("details")
        except (TypeError, ValueError):
            shot["detail"] = None
    key = request.app[SHOTS].put(shot)
    raise web.HTTPSeeOther(f"/admin/slots/{slot_id}?shot={key}#test-shot")
