"""Template media: style / face reference images under <media_root>/templates/.

A slot binds templates by id in `settings_json.templates {role: template_id}` (roles per the
catalogue: `style`, `face`). The CLI (`template add|list|rm`, `slot set --template`) and the admin
API (`POST /api/template-media/register`, `DELETE /api/template-media/{id}`) both call these
functions: one set of type/size checks, one audit trail.
"""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from photoslot import audit, media, slots
from photoslot.errors import Conflict, NotFound, ValidationError
from photoslot.logs import has_controls
from photoslot.providers import catalogue

MAX_LABEL = 200


def view(row: dict) -> dict:
    return {
        "id": str(row["id"]),
        "mime": row["mime"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "label": row["label"],
        "created_at": row["created_at"],
        "uploaded_by": row["uploaded_by"],
    }


def _parse_id(template_id) -> uuid.UUID:
    try:
        return template_id if isinstance(template_id, uuid.UUID) else uuid.UUID(str(template_id))
    except ValueError:
        raise NotFound(f"no template {template_id!r}; see `photoslot template list`",
                       {"template_id": str(template_id)}) from None


async def register(ctx, *, data: bytes, label: str | None, actor: str, source: str) -> dict:
    """Store one template image (type from its bytes, size ≤ ingest.max_upload_mb); audited."""
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise ValidationError({"label": f"must be a string of at most {MAX_LABEL} characters"})
    if label is not None and has_controls(label):
        raise ValidationError({"label": "must not contain control characters (line breaks, tabs, escape or "
                                        "direction codes)"})
    mime = await asyncio.to_thread(media.check_image_bytes, data, media.max_upload_bytes(ctx.cfg), "template")
    template_id = uuid.uuid4()
    path = ctx.media.templates / f"{template_id}.{media.MIME_EXT[mime]}"
    await asyncio.to_thread(ctx.media.write, path, data)
    try:
        row = await ctx.db.fetchone("template_insert", id=template_id, file_path=str(path), mime=mime,
                                    size_bytes=len(data), sha256=media.sha256_hex(data), label=label or None,
                                    uploaded_by=actor, now=ctx.clock.now())
        await audit.record(ctx.db, ctx.clock, actor=actor, source=source, action="template.add",
                           target=str(template_id), details={"mime": mime, "size_bytes": len(data), "label": label})
    except BaseException:
        ctx.media.remove(path)
        raise
    return view(row)


async def register_for_slot(ctx, *, slot_id: str, role: str, data: bytes, label: str | None, replace: bool,
                            actor: str, source: str) -> dict:
    """Register a template and bind it to `slot_id` as `role` (the contract's setting_key)."""
    slot = await slots.get(ctx.db, slot_id)
    if not slots.is_configured(slot):
        raise ValidationError({"slot_id": f"{slot_id} has no provider/operation yet; configure it first"})
    operation = catalogue.get_operation(slot["provider_id"], slot["operation_id"])
    if role not in operation.roles:
        takes = ", ".join(operation.roles) or "none"
        raise ValidationError({"setting_key": f"{slot['provider_id']}/{slot['operation_id']} takes no {role!r} "
                                              f"template; template roles: {takes}"})
    settings = dict(slot["settings_json"] or {})
    bound = dict(settings.get("templates") or {})
    if bound.get(role) and not replace:
        raise Conflict(f"{slot_id} already has a {role!r} template ({bound[role]}); pass replace to swap it",
                       {"template_id": bound[role], "slot_id": slot_id, "setting_key": role})
    sniffed = media.sniff_mime(data[:16])
    problem = catalogue.check_input(slot["provider_id"], sniffed, len(data)) if sniffed else None
    if problem is not None:  # the provider's own limits (Turbotext: 15 MB); register() checks the rest
        status, _, detail = problem
        raise (media.MediaTooLarge if status == 413 else media.UnsupportedMedia)(f"template: {detail}")
    row = await register(ctx, data=data, label=label, actor=actor, source=source)
    try:
        bound[role] = row["id"]
        settings["templates"] = bound
        await slots.configure(ctx.db, ctx.clock, slot_id, actor=actor, source=source, settings_json=settings,
                              expected_version=slot["version"])
    except BaseException:
        await _delete(ctx, row["id"])
        raise
    return {"id": row["id"], "slot_id": slot_id, "setting_key": role, "label": row["label"], "mime": row["mime"],
            "size_bytes": row["size_bytes"], "created_at": row["created_at"]}


async def list_all(db) -> list[dict]:
    return [{**view(r), "used_by": list(r["used_by"] or [])} for r in await db.fetchall("template_list")]


async def get(db, template_id) -> dict:
    row = await db.fetchone("template_get", template_id=_parse_id(template_id))
    if row is None:
        raise NotFound(f"no template {template_id}; see `photoslot template list`", {"template_id": str(template_id)})
    return {**view(row), "file_path": row["file_path"]}


async def users(db, template_id) -> list[dict]:
    """Every binding: [{"slot_id", "role", "provider_id", "operation_id", "enabled"}]."""
    return await db.fetchall("template_users", template_id=str(_parse_id(template_id)))


def _needed(b: dict) -> bool:
    """Does the binding's slot need this role to run (its operation requires the template)?"""
    return (b["provider_id"] in catalogue.CATALOGUE
            and b["operation_id"] in catalogue.CATALOGUE[b["provider_id"]].operations
            and b["role"] in catalogue.get_operation(b["provider_id"], b["operation_id"]).needs)


async def _unbind(ctx, tx, template_id: str, bindings: list[dict], *, actor: str, source: str) -> list[dict]:
    done = []
    for b in bindings:
        needed = _needed(b)
        row = await tx.fetchone("template_unbind", slot_id=b["slot_id"], role=b["role"], template_id=template_id,
                                disable=needed, now=ctx.clock.now())
        if row is None:
            continue
        disabled = bool(b["enabled"]) and not row["enabled"]
        done.append({"slot_id": b["slot_id"], "role": b["role"], "disabled": disabled})
        await audit.record(tx, ctx.clock, actor=actor, source=source, action="template.unbind", target=b["slot_id"],
                           details={"template_id": template_id, "role": b["role"], "slot_disabled": disabled})
    return done


async def _delete(ctx, template_id, tx=None) -> bool:
    row = await (tx or ctx.db).fetchone("template_delete", template_id=_parse_id(template_id))
    if row is None:
        return False
    ctx.media.remove(row["file_path"])
    return True


def _describe(bindings: list[dict]) -> str:
    return ", ".join(f"{b['slot_id']} ({b['role']})" for b in bindings)


async def unbind(ctx, template_id, *, slot_id: str, role: str, force: bool, actor: str, source: str) -> dict:
    """DELETE /api/template-media/{id}: unbind from slot_id/role; the file goes when nobody uses it.

    404 unknown template; 409 without `force` when unbinding it would disable an enabled slot that
    needs it (the answer names the slot), or while another slot still uses it (force unbinds it
    everywhere). The result's `disabled` lists the slots the unbinding disabled.
    """
    template = await get(ctx.db, template_id)
    tid = template["id"]
    bindings = await users(ctx.db, tid)
    others = [b for b in bindings if (b["slot_id"], b["role"]) != (slot_id, role)]
    mine = [b for b in bindings if (b["slot_id"], b["role"]) == (slot_id, role)]
    disabling = [b for b in (bindings if others else mine) if b["enabled"] and _needed(b)]
    if others and not force:
        warn = f" (and disable {', '.join(b['slot_id'] for b in disabling)})" if disabling else ""
        raise Conflict(f"template {tid} is still used by {_describe(others)}; use force to unbind it everywhere{warn}",
                       {"used_by": [{"slot_id": b["slot_id"], "role": b["role"]} for b in others],
                        "disables": [b["slot_id"] for b in disabling]})
    if disabling and not force:
        b = disabling[0]
        raise Conflict(f"{b['slot_id']} is enabled and {b['provider_id']}/{b['operation_id']} needs its {b['role']!r} "
                       f"template: unbinding it disables {b['slot_id']} (its booth gets 404); use force to unbind "
                       "and disable it", {"disables": [b["slot_id"]], "slot_id": b["slot_id"], "role": b["role"]})
    targets = bindings if force else [b for b in bindings if (b["slot_id"], b["role"]) == (slot_id, role)]
    async with ctx.db.transaction() as tx:
        done = await _unbind(ctx, tx, tid, targets, actor=actor, source=source)
        removed = False
        if not others or force:
            removed = await _delete_in_tx(ctx, tx, tid, actor=actor, source=source)
    if removed:
        ctx.media.remove(template["file_path"])
    return {"removed": removed, "unbound_from": done, "disabled": [d["slot_id"] for d in done if d["disabled"]]}


async def _delete_in_tx(ctx, tx, tid: str, *, actor: str, source: str) -> bool:
    row = await tx.fetchone("template_delete", template_id=tid)
    if row is not None:
        await audit.record(tx, ctx.clock, actor=actor, source=source, action="template.remove", target=tid,
                           details={})
    return row is not None


async def remove(ctx, template_id, *, force: bool, actor: str, source: str) -> dict:
    """`template rm`: refused while any slot uses it unless force, which unbinds it everywhere."""
    template = await get(ctx.db, template_id)
    tid = template["id"]
    bindings = await users(ctx.db, tid)
    if bindings and not force:
        raise Conflict(f"template {tid} is used by {_describe(bindings)}; `template rm --force` unbinds it "
                       "(and disables those slots)",
                       {"used_by": [{"slot_id": b["slot_id"], "role": b["role"]} for b in bindings]})
    async with ctx.db.transaction() as tx:
        done = await _unbind(ctx, tx, tid, bindings, actor=actor, source=source)
        removed = await _delete_in_tx(ctx, tx, tid, actor=actor, source=source)
    if removed:
        ctx.media.remove(template["file_path"])
    return {"removed": removed, "unbound_from": done}


async def resolve_refs(ctx, refs: dict[str, str], *, actor: str, source: str) -> tuple[dict[str, str], list[str]]:
    """`slot set --template ROLE=PATH_OR_ID`: an existing file is registered, else it must be an id.

    Returns ({role: template_id}, ids registered now) — the caller discards the new ones when the
    slot update fails, so a rejected `slot set` leaves no template behind.
    """
    out: dict[str, str] = {}
    created: list[str] = []
    try:
        for role, ref in refs.items():
            path = Path(ref).expanduser()
            if path.is_file():
                try:
                    data = await asyncio.to_thread(path.read_bytes)
                except OSError as exc:
                    raise ValidationError({f"templates.{role}": f"cannot read {ref}: {exc.strerror}"}) from None
                row = await register(ctx, data=data, label=path.name, actor=actor, source=source)
                created.append(row["id"])
                out[role] = row["id"]
            else:
                try:
                    uuid.UUID(ref)
                except ValueError:
                    raise ValidationError({f"templates.{role}": f"{ref!r} is neither a file nor a template id"}) \
                        from None
                out[role] = (await get(ctx.db, ref))["id"]
    except BaseException:
        await discard_unused(ctx, created)
        raise
    return out, created


async def discard_unused(ctx, template_ids: list[str]) -> None:
    for tid in template_ids:
        if not await users(ctx.db, tid):
            await _delete(ctx, tid)


async def load_for_job(db, settings: dict) -> dict[str, dict]:
    """{role: template row} for a job's snapshot; NotFound names a template deleted since."""
    refs = {role: tid for role, tid in (settings.get("templates") or {}).items() if tid}
    if not refs:
        return {}
    rows = await db.fetchall("template_get_many", ids=[str(_parse_id(t)) for t in refs.values()])
    by_id = {str(r["id"]): r for r in rows}
    out = {}
    for role, tid in refs.items():
        row = by_id.get(str(tid))
        if row is None:
            raise NotFound(f"the {role!r} template {tid} was deleted after the job was queued")
        out[role] = row
    return out


# ---------------------------------------------------------------- the web admin's slot form and Templates page

async def save_slot(ctx, slot_id: str, *, name, provider_id, operation_id, settings_json: dict, enabled: bool,
                    expected_version: int | None, uploads: dict[str, tuple[bytes, str | None]],
                    replace: frozenset[str] | set[str] = frozenset(), actor: str, source: str) -> dict:
    """The slot form's one Save: new template images uploaded, bound to their roles, and the slot
    saved — all of it or nothing.

    Everything is checked before anything is stored: each image (type and damage from its bytes,
    size, the provider's own limits), that its role is one the operation takes, that an upload over
    a role already bound says so (`replace` names the roles the admin agreed to replace), that
    the templates chosen from the list still exist, and the whole configuration against the
    catalogue. Every problem is reported at once, per field (`template_upload.<role>`,
    `settings_json.templates.<role>`, …). Only then are the images stored and the slot saved; if
    the save fails (someone else saved the slot meanwhile: 409) the images stored are removed.
    """
    await slots.get(ctx.db, slot_id)
    errors: dict[str, str] = {}
    provider = catalogue.CATALOGUE.get(provider_id) if isinstance(provider_id, str) else None
    operation = provider.operations.get(operation_id) if provider is not None else None
    settings = dict(settings_json)
    bound = dict(settings.get("templates") or {})
    checked: dict[str, tuple[bytes, str | None, str]] = {}
    for role, (data, label) in uploads.items():
        field = f"template_upload.{role}"
        if operation is None:
            continue  # the provider/operation error says why
        if role not in operation.roles:
            errors[field] = f"{provider.id}/{operation.id} takes no {role!r} template"
            continue
        if bound.get(role) and role not in replace:
            errors[field] = "a template is chosen for this role already; tick Replace to put the new image in its place"
            continue
        if label is not None and len(label) > MAX_LABEL:
            errors[field] = f"the label must be at most {MAX_LABEL} characters"
            continue
        try:
            mime = await asyncio.to_thread(media.check_image_bytes, data, media.max_upload_bytes(ctx.cfg), "the image")
        except (media.MediaTooLarge, media.UnsupportedMedia) as exc:
            errors[field] = exc.message
            continue
        problem = catalogue.check_input(provider.id, mime, len(data))
        if problem is not None:
            errors[field] = problem[2]
            continue
        checked[role] = (data, label, mime)
    for role, ref in bound.items():
        if ref and role not in checked and catalogue._is_uuid(ref):
            if await ctx.db.fetchone("template_get", template_id=_parse_id(ref)) is None:
                errors[f"settings_json.templates.{role}"] = "this template was deleted meanwhile; choose another"
    placeholder = {role: str(uuid.UUID(int=0)) for role in checked}
    try:
        slots.check_configuration(name=name, provider_id=provider_id, operation_id=operation_id,
                                  settings_json={**settings, "templates": {**bound, **placeholder}}
                                  if bound or placeholder else settings, enabled=enabled)
    except ValidationError as exc:
        errors.update({k: v for k, v in exc.details.items()
                       if k.rpartition(".")[2] not in uploads or not k.startswith("settings_json.templates.")})
    if errors:
        raise ValidationError(errors)
    created: list[str] = []
    try:
        for role, (data, label, _mime) in checked.items():
            row = await register(ctx, data=data, label=label, actor=actor, source=source)
            created.append(row["id"])
            bound[role] = row["id"]
        if bound:
            settings["templates"] = bound
        saved = await slots.configure(ctx.db, ctx.clock, slot_id, actor=actor, source=source, name=name,
                                      provider_id=provider_id, operation_id=operation_id, settings_json=settings,
                                      enabled=enabled, expected_version=expected_version)
    except BaseException:
        for tid in created:
            await _delete(ctx, tid)
        raise
    return saved


async def rename(ctx, template_id, label, *, actor: str, source: str) -> dict:
    """A template's label (what the slot form and the Templates page show); audited."""
    template = await get(ctx.db, template_id)
    text = str(label or "").strip()
    if len(text) > MAX_LABEL:
        raise ValidationError({"label": f"must be a string of at most {MAX_LABEL} characters"})
    row = await ctx.db.fetchone("template_rename", template_id=template["id"], label=text or None)
    await audit.record(ctx.db, ctx.clock, actor=actor, source=source, action="template.rename", target=template["id"],
                       details={"label": text or None, "was": template["label"]})
    return view(row)


async def removal_effect(db, template_id) -> dict:
    """What deleting a template does (the confirmation says it before): the slots it is unbound
    from, and those of them it disables (enabled, and their operation needs it)."""
    bindings = await users(db, (await get(db, template_id))["id"])
    return {"used_by": [{"slot_id": b["slot_id"], "role": b["role"]} for b in bindings],
            "disables": sorted({b["slot_id"] for b in bindings if b["enabled"] and _needed(b)})}
