"""Media over the admin API: temporary public links, template images bound to a slot's role,
and cache purges. Rules live in photoslot/public_media.py, templates.py and purge.py."""
from __future__ import annotations

import uuid

from aiohttp import web

from photoslot import media, public_media, purge, templates
from photoslot.errors import ValidationError
from photoslot.server.toolkit import actor, answer, endpoint, json_body, q_bool, q_str, read_upload

routes = web.RouteTableDef()


@routes.post("/api/media/register")
@endpoint("media:write")
async def register_media(request, ctx, claims):
    fields, data = await read_upload(request, media.max_upload_bytes(ctx.cfg))
    job_id = fields.get("job_id") or None
    if job_id is not None:
        try:
            job_id = uuid.UUID(job_id)
        except ValueError:
            raise ValidationError({"job_id": "must be a UUID"}) from None
    return answer(await public_media.register(ctx, data=data, job_id=job_id, kind="upload"), 201)


@routes.post("/api/template-media/register")
@endpoint("media:write")
async def register_template(request, ctx, claims):
    fields, data = await read_upload(request, media.max_upload_bytes(ctx.cfg))
    errors = {k: "is required" for k in ("slot_id", "setting_key") if not fields.get(k)}
    if errors:
        raise ValidationError(errors)
    replace = fields.get("replace", "false").lower() in ("1", "true", "yes", "on")
    out = await templates.register_for_slot(ctx, slot_id=fields["slot_id"], role=fields["setting_key"], data=data,
                                            label=fields.get("label") or None, replace=replace,
                                            actor=actor(claims), source="http")
    return answer(out, 201)


@routes.delete("/api/template-media/{template_id}")
@endpoint("media:write")
async def delete_template(request, ctx, claims):
    errors = {k: "is required" for k in ("slot_id", "setting_key") if q_str(request, k) is None}
    if errors:  # the contract requires both: which binding to remove is never guessed
        raise ValidationError(errors)
    done = await templates.unbind(ctx, request.match_info["template_id"], slot_id=q_str(request, "slot_id"),
                                  role=q_str(request, "setting_key"), force=bool(q_bool(request, "force")),
                                  actor=actor(claims), source="http")
    resp = web.Response(status=204)
    if done["disabled"]:  # only with force: the slots this disabled, named as the 409 named them
        resp.headers["X-Slots-Disabled"] = ",".join(done["disabled"])
    return resp


@routes.post("/api/media/cache/purge")
@endpoint("settings:write")
async def purge_cache(request, ctx, claims):
    # the contract makes the body and its scope optional: without one, the temporary files only
    body = await json_body(request, optional=True)
    unknown = set(body) - {"scope"}
    if unknown:
        raise ValidationError({k: "unknown field" for k in sorted(unknown)})
    scope = body.get("scope", purge.DEFAULT_SCOPE)
    return answer(await purge.request_purge(ctx, scope, actor=actor(claims), source="http"), 202)
