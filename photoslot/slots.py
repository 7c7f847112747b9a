"""The 15 slots: read, configure (validated against the catalogue), reset."""
from __future__ import annotations

from photoslot import SLOT_IDS, audit
from photoslot.errors import Conflict, NotFound, ValidationError
from photoslot.logs import has_controls
from photoslot.providers import catalogue


def check_slot_id(slot_id: str) -> str:
    if slot_id not in SLOT_IDS:
        raise NotFound(f"no such slot {slot_id!r}; slots are slot-001 … slot-015", {"slot_id": slot_id})
    return slot_id


def is_configured(slot: dict) -> bool:
    return bool(slot.get("provider_id") and slot.get("operation_id"))


def ingest_url(cfg, slot_id: str) -> str:
    return f"{cfg.public_base_url()}/ingest/{slot_id}"


async def get(db, slot_id: str) -> dict:
    check_slot_id(slot_id)
    slot = await db.fetchone("slot_get", slot_id=slot_id)
    if slot is None:  # the schema inserts all 15; a missing row means a broken database
        raise NotFound(f"slot {slot_id} is missing from the database")
    return slot


async def list_all(db) -> list[dict]:
    return await db.fetchall("slot_list")


async def search(db, *, provider_id=None, operation_id=None, text=None) -> list[dict]:
    """GET /api/slots filters: exact provider/operation, case-insensitive substring of the name."""
    needle = (text or "").strip().casefold()
    return [s for s in await list_all(db)
            if (provider_id is None or s["provider_id"] == provider_id)
            and (operation_id is None or s["operation_id"] == operation_id)
            and (not needle or needle in (s["name"] or "").casefold())]


def check_configuration(*, name, provider_id, operation_id, settings_json, enabled) -> None:
    """A slot's would-be configuration against the catalogue (a per-field ValidationError).

    A disabled slot may lack its templates: over the admin API they are bound one by one
    (POST /api/template-media/register) and the slot is enabled afterwards.
    """
    errors: dict[str, str] = {}
    if not isinstance(name, str) or len(name) > 100:
        errors["name"] = "must be a string of at most 100 characters"
    elif has_controls(name):  # shown in terminals, logs and pages: no escape sequences, no reordering
        errors["name"] = "must not contain control characters (line breaks, tabs, escape or direction codes)"
    if provider_id is None and operation_id is None:
        errors["provider_id"] = "a provider is required"
    else:
        errors.update(catalogue.validate(provider_id, operation_id, settings_json))
        if not enabled and not errors.keys() & {"provider_id", "operation_id"}:
            bound = settings_json.get("templates") if isinstance(settings_json, dict) else None
            bound = bound if isinstance(bound, dict) else {}
            for role in catalogue.get_operation(provider_id, operation_id).needs:
                if not bound.get(role):
                    errors.pop(f"settings_json.templates.{role}", None)
    if errors:
        raise ValidationError(errors)


async def configure(db, clock, slot_id: str, *, actor: str, source: str, name=None, provider_id=None,
                    operation_id=None, settings_json=None, enabled=None, expected_version: int | None = None,
                    expected_updated_at=None) -> dict:
    """Merge the given fields over the slot, validate the result, save it with a version check.

    Omitted fields keep their value, so `slot set slot-001 --prompt "…"` touches the prompt only.
    Switching provider or operation starts from empty settings unless new ones are given.
    """
    current = await get(db, slot_id)
    if expected_updated_at is not None and expected_updated_at != current["updated_at"]:
        # the admin API's optimistic check: `updated_at` (or If-Match) from the admin's last read
        raise Conflict(f"{slot_id} was changed meanwhile (updated_at {current['updated_at'].isoformat()})",
                       {"updated_at": current["updated_at"].isoformat(), "version": current["version"]})
    if expected_version is not None and expected_version != current["version"]:
        raise Conflict(f"{slot_id} was changed meanwhile (version {current['version']}, you had {expected_version})",
                       {"version": current["version"]})
    new_provider = provider_id if provider_id is not None else current["provider_id"]
    new_operation = operation_id if operation_id is not None else current["operation_id"]
    if settings_json is None:
        switched = (new_provider, new_operation) != (current["provider_id"], current["operation_id"])
        settings_json = {} if switched else dict(current["settings_json"] or {})
    new_name = name if name is not None else current["name"]
    new_enabled = enabled if enabled is not None else (current["enabled"] or not is_configured(current))
    check_configuration(name=new_name, provider_id=new_provider, operation_id=new_operation,
                        settings_json=settings_json, enabled=new_enabled)
    saved = await db.fetchone("slot_update", slot_id=slot_id, name=new_name, provider_id=new_provider,
                              operation_id=new_operation, settings_json=settings_json, enabled=bool(new_enabled),
                              now=clock.now(), version=current["version"])
    if saved is None:
        raise Conflict(f"{slot_id} was changed meanwhile; read it again and retry")
    changed = {k: v for k, v in (("name", new_name), ("provider_id", new_provider), ("operation_id", new_operation),
                                 ("settings_json", settings_json), ("enabled", bool(new_enabled)))
               if current.get(k) != v}
    was = {k: current.get(k) for k in changed if current.get(k) is not None}
    await audit.record(db, clock, actor=actor, source=source, action="slot.update", target=slot_id,
                       details={**changed, **({"was": was} if was else {})})
    return saved


async def reset(db, clock, slot_id: str, *, actor: str, source: str) -> dict:
    check_slot_id(slot_id)
    saved = await db.fetchone("slot_reset", slot_id=slot_id, now=clock.now())
    await audit.record(db, clock, actor=actor, source=source, action="slot.reset", target=slot_id, details={})
    return saved


def view(cfg, slot: dict) -> dict:
    """A slot as the CLI and the web admin show it (without recent_results); the admin API answers
    api_view."""
    return {
        "id": slot["id"],
        "name": slot["name"],
        "provider_id": slot["provider_id"],
        "operation_id": slot["operation_id"],
        "settings_json": slot["settings_json"],
        "enabled": slot["enabled"],
        "configured": is_configured(slot),
        "version": slot["version"],
        "created_at": slot["created_at"],
        "updated_at": slot["updated_at"],
        "last_reset_at": slot["last_reset_at"],
        "ingest_url": ingest_url(cfg, slot["id"]),
        "last_result_at": slot.get("last_result_at"),
    }


def api_view(cfg, slot: dict) -> dict:
    """The Slot object of the admin API: view(), but an unconfigured slot's provider_id and
    operation_id are "" rather than null — the contract types both as strings (a client built from it
    would refuse the whole list of a new studio); `configured` says whether they are set."""
    out = view(cfg, slot)
    out["provider_id"] = out["provider_id"] or ""
    out["operation_id"] = out["operation_id"] or ""
    return out


async def recent_results(db, cfg, slot_id: str, limit: int = 10, *, now=None) -> list[dict]:
    """The last successes; with `now`, only those whose download link still works."""
    base = cfg.public_base_url()
    if now is not None:
        rows = await db.fetchall("slot_recent_results_live", slot_id=slot_id, limit=limit, now=now)
    else:
        rows = await db.fetchall("slot_recent_results", slot_id=slot_id, limit=limit)
    return [{
        "job_id": str(r["id"]),
        "download_url": f"{base}/public/results/{r['id']}",
        "thumbnail_url": f"{base}/public/results/{r['id']}/thumbnail",
        "completed_at": r["finalized_at"],
        "result_expires_at": r["result_expires_at"],
        "mime": r["result_mime_type"],
        "size_bytes": r["result_size_bytes"],
    } for r in rows]
