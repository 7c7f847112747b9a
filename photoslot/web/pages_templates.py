"""Templates: every template image with its thumbnail, label, type, size and the slots that use it;
upload one to the library, rename one, delete one — after a confirmation page that names the slots
it is unbound from and those that would be disabled (`templates.register`, `templates.rename`,
`templates.removal_effect`, `templates.remove`: the functions behind `photoslot template …` and
`/api/template-media`). Every form answers with a redirect."""
from __future__ import annotations

from aiohttp import web

from photoslot import templates
from photoslot.errors import PhotoslotError, ValidationError
from photoslot.web import render
from photoslot.web.session import Upload, action, form_of, page

routes = web.RouteTableDef()
NOTICES = {"uploaded": "Template uploaded.", "renamed": "Renamed.", "deleted": "Template deleted."}


async def render_templates(request, ctx, session, *, status: int = 200, errors: dict | None = None,
                           values: dict | None = None) -> web.Response:
    _ = render.translate(request)
    notice = NOTICES.get(request.query.get("done", ""))
    return render.page(request, "templates.html", session, status=status, active="templates", title="Templates",
                       rows=await templates.list_all(ctx.db), notice=_(notice) if notice else None,
                       errors=errors or {}, values=values or {}, can_write=session.can("media:write"))


@routes.get("/admin/templates")
@page("slots:read")
async def templates_page(request, ctx, session):
    return await render_templates(request, ctx, session)


@routes.post("/admin/templates")
@action("media:write")
async def upload_template(request, ctx, session):
    form = form_of(request)
    file = form.get("file")
    label = str(form.get("label", "")).strip()
    try:
        if not isinstance(file, Upload):
            raise ValidationError({"file": "choose an image"})
        await templates.register(ctx, data=file.data, label=label or file.filename or None, actor=session.actor,
                                 source="web")
    except PhotoslotError as exc:
        errors = exc.details if isinstance(exc, ValidationError) else {"file": exc.message}
        return await render_templates(request, ctx, session, status=exc.http_status, errors=errors,
                                      values={"label": label})
    raise web.HTTPSeeOther("/admin/templates?done=uploaded")


@routes.post("/admin/templates/{template_id}/label")
@action("media:write")
async def rename_template(request, ctx, session):
    tid = request.match_info["template_id"]
    try:
        await templates.rename(ctx, tid, form_of(request).get("label", ""), actor=session.actor, source="web")
    except ValidationError as exc:
        return await render_templates(request, ctx, session, status=422,
                                      errors={f"label.{tid}": exc.details.get("label", exc.message)})
    raise web.HTTPSeeOther("/admin/templates?done=renamed")


@routes.get("/admin/templates/{template_id}/delete")
@page("slots:read")
async def confirm_delete(request, ctx, session):
    tid = request.match_info["template_id"]
    template = await templates.get(ctx.db, tid)
    effect = await templates.removal_effect(ctx.db, tid)
    return render.page(request, "template_delete.html", session, active="templates", title="Delete a template",
                       tpl=template, effect=effect, can_write=session.can("media:write"))


@routes.post("/admin/templates/{template_id}/delete")
@action("media:write")
async def delete_template(request, ctx, session):
    tid = request.match_info["template_id"]
    if form_of(request).get("confirm") != "yes":  # only the confirmation page's button deletes
        raise web.HTTPSeeOther(f"/admin/templates/{(await templates.get(ctx.db, tid))['id']}/delete")
    await templates.remove(ctx, tid, force=True, actor=session.actor, source="web")
    raise web.HTTPSeeOther("/admin/templates?done=deleted")
