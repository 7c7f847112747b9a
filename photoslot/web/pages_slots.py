"""The Slots page (15 live cards) and a Slot's page: the catalogue-driven form, templates, the
ingest URL with the DSLR Remote Pro settings, the test shot, recent results, the slot's figures.

Saving calls `slots.configure`, a template upload `templates.register_for_slot`, a test shot
`IngestHandler.rehearse` — the functions behind `PUT /api/slots/{id}`, `POST
/api/template-media/register` and `POST /api/slots/{id}/test_shot`: one validation, one audit."""
from __future__ import annotations

import base64
import datetime as dt
import json

from aiohttp import web

from photoslot import media, overview, slots, stats, templates
from photoslot import settings as live_settings
from photoslot.errors import Conflict, PhotoslotError, ValidationError
from photoslot.providers import catalogue
from photoslot.server.keys import INGEST
from photoslot.server.toolkit import read_upload
from photoslot.web import render
from photoslot.web.session import action, page, url_form

routes = web.RouteTableDef()


@routes.get("/admin/")
@page("slots:read")
async def slots_page(request, ctx, session):
    cards = await overview.slot_cards(ctx)
    return render.page(request, "slots.html", session, active="slots", title="Slots", cards=cards)


# ---------------------------------------------------------------- the form <-> settings_json

def chosen_operation(provider_id: str | None, operation_id: str | None):
    provider = catalogue.CATALOGUE.get(provider_id or "")
    if provider is None:
        return None, None
    operation = provider.operations.get(operation_id or "") or next(iter(provider.operations.values()))
    return provider, operation


def form_settings(form, provider, operation) -> dict:
    """The slot's settings_json from the posted form, typed by the catalogue; a value that is not
    of its type goes through as typed, so `slots.configure` names the field in its 422."""
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
    bound = {}
    for role in operation.roles:
        ref = str(form.get(f"template.{role}", "")).strip()
        if ref:
            bound[role] = ref
    if bound:
        settings["templates"] = bound
    # empty = the booth gets back the format it sent (the slot has no output_format); a named
    # format is stored as chosen, JPEG included, so the page never says one thing and does another
    fmt = str(form.get("output_format", "")).strip()
    if fmt:
        settings["output_format"] = fmt
    return settings


async def slot_context(request, ctx, session, slot_id: str, *, form: dict | None = None, errors: dict | None = None,
                       notice: str | None = None, conflict: bool = False, shot: dict | None = None) -> dict:
    slot = await slots.get(ctx.db, slot_id)
    view = slots.view(ctx.cfg, slot)
    settings = slot["settings_json"] or {}
    q = request.query
    asked_provider = (form or {}).get("provider_id") or q.get("provider_id")
    asked_operation = (form or {}).get("operation_id") or q.get("operation_id")
    _ = render.translate(request)
    if asked_provider and asked_provider not in catalogue.CATALOGUE:
        # an address typed or kept from elsewhere: the form as saved, and why (never the text asked for)
        notice = _("The address names a provider that does not exist; the slot's own is shown.")
        asked_provider = asked_operation = None
    provider_id = asked_provider or slot["provider_id"] or "gemini"
    operation_id = asked_operation or (slot["operation_id"] if provider_id == slot["provider_id"] else None)
    provider, operation = chosen_operation(provider_id, operation_id)
    if asked_operation and provider is not None and asked_operation not in provider.operations:
        notice = _("The address names an operation this provider does not offer; its first one is shown.")
    same_op = provider is not None and (provider.id, operation.id) == (slot["provider_id"], slot["operation_id"])
    values = {
        "name": (form or {}).get("name", q.get("name", slot["name"] or "")),
        "prompt": (form or {}).get("prompt", q.get("prompt", settings.get("prompt", ""))),
        "enabled": (form or {}).get("enabled", slot["enabled"] or not slots.is_configured(slot)),
        "output_format": (form or {}).get("output_format", settings.get("output_format", "")),
        "params": (form or {}).get("params", settings.get("params", {}) if same_op else {}),
        "templates": (form or {}).get("templates", settings.get("templates", {}) if same_op else {}),
    }
    now = ctx.clock.now()
    recent = await slots.recent_results(ctx.db, ctx.cfg, slot_id, now=None)
    today = await stats.slot_stats(ctx, slot_id, from_=overview.start_of_day(now), to=now + dt.timedelta(seconds=1),
                                   group_by="day")
    week = await stats.slot_stats(ctx, slot_id, from_=now - dt.timedelta(days=7), to=now, group_by="day")
    return {
        "slot": view, "catalogue": catalogue.CATALOGUE, "provider": provider, "operation": operation,
        "values": values, "errors": errors or {}, "notice": notice, "conflict": conflict, "shot": shot,
        "all_templates": await templates.list_all(ctx.db), "recent": recent, "now": now,
        "today": today["summary"], "week": week["summary"], "formats": catalogue.OUTPUT_FORMATS,
        "window": (await ctx.db.fetchone("ingest_context", slot_id=slot_id)),
        "can_write": session.can("slots:write"), "can_upload": session.can("media:write"),
    }


def window_seconds(ctx_row, cfg) -> float:
    live = live_settings.from_rows(cfg, (ctx_row or {}).get("live_settings") or {})
    return live.sync_response_seconds


async def render_slot(request, ctx, session, slot_id: str, *, status: int = 200, **kw) -> web.Response:
    context = await slot_context(request, ctx, session, slot_id, **kw)
    context["window_s"] = window_seconds(context.pop("window"), ctx.cfg)
    return render.page(request, "slot.html", session, status=status, active="slots",
                       title=f"{context['slot']['id']} · {context['slot']['name'] or ''}".rstrip(" ·"), **context)


@routes.get(r"/admin/slots/{slot_id:slot-\d{3}}")
@page("slots:read")
async def slot_page(request, ctx, session):
    _ = render.translate(request)
    notice = _("Saved.") if "saved" in request.query else _("Template uploaded.") if "template" in request.query else None
    return await render_slot(request, ctx, session, request.match_info["slot_id"], notice=notice)


@routes.post(r"/admin/slots/{slot_id:slot-\d{3}}")
@action("slots:write")
async def save_slot(request, ctx, session):
    slot_id = request.match_info["slot_id"]
    form = await url_form(request)
    provider, operation = chosen_operation(str(form.get("provider_id", "")), str(form.get("operation_id", "")))
    echo = {"name": str(form.get("name", "")), "prompt": str(form.get("prompt", "")),
            "enabled": form.get("enabled") == "on", "provider_id": str(form.get("provider_id", "")),
            "operation_id": str(form.get("operation_id", "")), "output_format": str(form.get("output_format", "")),
            "params": {k[6:]: v for k, v in form.items() if k.startswith("param.")},
            "templates": {k[9:]: v for k, v in form.items() if k.startswith("template.")}}
    try:
        version = int(str(form.get("version", "")))
    except ValueError:
        version = None
    try:
        if provider is None:
            raise ValidationError({"provider_id": "choose a provider"})
        await slots.configure(ctx.db, ctx.clock, slot_id, actor=session.actor, source="web", name=echo["name"],
                              provider_id=provider.id, operation_id=operation.id,
                              settings_json=form_settings(form, provider, operation), enabled=echo["enabled"],
                              expected_version=version)
    except ValidationError as exc:
        return await render_slot(request, ctx, session, slot_id, status=422, form=echo, errors=exc.details)
    except Conflict:
        return await render_slot(request, ctx, session, slot_id, status=409, form=echo, conflict=True)
    raise web.HTTPSeeOther(f"/admin/slots/{slot_id}?saved=1")


@routes.post(r"/admin/slots/{slot_id:slot-\d{3}}/templates")
@action("media:write")
async def upload_template(request, ctx, session):
    slot_id = request.match_info["slot_id"]
    try:
        fields, data = await read_upload(request, media.max_upload_bytes(ctx.cfg), file_field="file")
        await templates.register_for_slot(ctx, slot_id=slot_id, role=fields.get("setting_key", ""), data=data,
                                          label=fields.get("label") or None, replace=True, actor=session.actor,
                                          source="web")
    except PhotoslotError as exc:
        errors = exc.details if isinstance(exc, ValidationError) else {"template": exc.message}
        return await render_slot(request, ctx, session, slot_id, status=exc.http_status,
                                 errors={f"template_upload.{k}": v for k, v in errors.items()})
    raise web.HTTPSeeOther(f"/admin/slots/{slot_id}?template=1")


@routes.get("/admin/templates/{template_id}")
@page("slots:read")
async def template_image(request, ctx, session):
    """A template's preview on the Slot page (signed-in admins only): a small JPEG made on first view
    and kept beside the template (the sweeper keeps it while the template lives), not the template
    itself, which may be megabytes."""
    row = await templates.get(ctx.db, request.match_info["template_id"])
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
    slot_id = request.match_info["slot_id"]
    slots.check_slot_id(slot_id)
    try:
        _fields, data = await read_upload(request, media.max_upload_bytes(ctx.cfg), file_field="photo")
    except PhotoslotError as exc:
        return await render_slot(request, ctx, session, slot_id, status=exc.http_status,
                                 shot={"ok": False, "status": exc.http_status, "reason": exc.code,
                                       "detail": exc.message, "ms": 0, "original": None, "job_id": None})
    answer, outcome, job_id, ms = await request.app[INGEST].rehearse(slot_id, data, admin=session.user)
    original = None if outcome in PHOTO_REFUSED else await preview_data_url(data)
    shot = {"ok": answer.status == 200, "status": answer.status, "reason": outcome, "ms": ms,
            "job_id": str(job_id) if job_id else None, "original": original, "detail": None}
    if answer.status != 200:
        try:
            shot["detail"] = json.loads(answer.body).get("details")
        except (TypeError, ValueError):
            shot["detail"] = None
    return await render_slot(request, ctx, session, slot_id, status=200, shot=shot)
