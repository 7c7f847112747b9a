"""The words a page shows for photoslot's ids: parameter names, template roles, operations, job
states, audit actions, their fields and sources, who did it. The ids stay what the API, the CLI and
the database use; a page shows these words (translated through the one catalogue, locale/ru.po) and
keeps the id in a tooltip.

Each table is keyed by the id it names. An id missing here is shown as it is and remembered as
missing (i18n.MISSES), so the catalogue's coverage test fails until it has its words — a new
provider parameter or audit action included (tests/unit/test_web_catalogue.py finds them in the
provider catalogue and in every `audit.record` call)."""
from __future__ import annotations

from photoslot.providers import catalogue
from photoslot.web import i18n

# the provider catalogue's parameters, by name (one meaning whichever operation has it)
PARAMS = {
    "temperature": "Temperature",
    "seed": "Seed (repeatable results)",
    "strength": "Strength of the change",
    "scale": "Prompt strictness",
    "negative_prompt": "What must not appear",
    "original_language": "Language of the prompt",
    "user_id": "Turbotext user number",
    "face_restore": "Sharpen the swapped face",
    "model": "Model",
    "aspect_ratio": "Aspect ratio",
    "image_size": "Image size",
}

ROLES = {"style": "Style template", "face": "Face template"}

AUDIT_ACTIONS = {
    "slot.update": "Slot saved",
    "slot.reset": "Slot cleared",
    "slot.reset_stats": "Slot figures started afresh",
    "settings.update": "Settings changed",
    "template.add": "Template uploaded",
    "template.rename": "Template renamed",
    "template.unbind": "Template taken off a slot",
    "template.remove": "Template deleted",
    "job.cancel": "Job cancelled",
    "media.purge": "Media purge",
    "users.login": "Signed in",
    "users.login_failed": "Failed sign-in",
    "users.logout": "Signed out",
    "users.revoke": "Sessions ended",
    "users.reset": "New password",
    "secrets.encrypt_stored": "Stored keys encrypted",
    "secrets.rotate": "Encryption key replaced",
    "studio.restore": "Studio restored from a backup",
    "studio.restore_undo": "Restore undone: the studio before it is back",
    "studio.restore_discard_previous": "The studio kept from before a restore removed",
    "settings.ingest_password_revealed": "Ingest password shown to an admin",
}

AUDIT_SOURCES = {"web": "web page", "http": "admin API", "cli": "command line", "start": "start-up",
                 "test": "test"}

# the fields audit details name (a slot's, the settings', a template's …)
FIELDS = {
    "name": "Name",
    "provider_id": "Provider",
    "operation_id": "Operation",
    "enabled": "Enabled",
    "prompt": "Prompt",
    "output_format": "Output format",
    "settings_json": "Slot settings",
    "sync_response_seconds": "Response window (seconds)",
    "result_retention_hours": "Result retention (hours)",
    "ingest_password": "Ingest password",
    "password": "Password",
    "public_base_url": "Public address",
    "time_zone": "Time zone",
    "provider_key.gemini": "Gemini API key",
    "provider_key.turbotext": "Turbotext API key",
    "label": "Label",
    "mime": "Type",
    "size_bytes": "Size",
    "role": "Role",
    "template_id": "Template",
    "slot_disabled": "Slot disabled",
    "slot_id": "Slot",
    "was": "Before",
    "sessions": "Sessions",
    "everywhere": "Everywhere",
    "client": "From address",
    "user": "User",
    "purge_id": "Purge",
    "expires_cutoff": "Up to",
    "last_reset_at": "Counted from",
    "encrypted": "Keys encrypted",
    "re_encrypted": "Keys re-encrypted",
    "key_file": "Key file",
    "created_at": "Backup made",
    "photoslot_version": "photoslot version",
    "schema_version": "Database version",
    "migrated": "Database updated",
    "results_restored": "Results restored",
    "replaced_existing": "Replaced the studio that was here",
    "previous_kept": "The studio before it kept, so the restore can be undone",
    "kept_now": "Kept now, so the undo can be undone",
    "database": "Database",
    "paths": "Folders",
}

# what a session may do (auth.PERMISSIONS), as a refusal says it: "This session may not …"
PERMISSIONS = {
    "slots:read": "see the slots",
    "slots:write": "change slots or run test shots",
    "settings:read": "see the settings",
    "settings:write": "change settings",
    "media:write": "upload or delete templates",
    "stats:read": "see jobs and statistics",
}

ACTORS = {"system": "photoslot itself", "first-start": "the first start", "test": "a test",
          "anonymous": "someone not signed in"}


def _word(table: dict, key, _) -> str:
    text = table.get(key)
    if text is None:
        i18n.missing(f"<no words for {key!r}>")
        return str(key)
    return _(text)


def param(name: str, _) -> str:
    return _word(PARAMS, name, _)


def role(name: str, _) -> str:
    return _word(ROLES, name, _)


def operation(provider_id: str | None, operation_id: str | None, _) -> str:
    """"Style transfer (Google Gemini)": the operation's name and its provider's."""
    provider = catalogue.CATALOGUE.get(provider_id or "")
    op = provider.operations.get(operation_id or "") if provider else None
    if op is None:
        return f"{provider_id or '—'} / {operation_id or '—'}" if provider_id or operation_id else "—"
    return f"{_(op.name)} ({provider.name})"


def provider(provider_id: str | None) -> str:
    p = catalogue.CATALOGUE.get(provider_id or "")
    return p.name if p else (provider_id or "—")


def action(name: str, _) -> str:
    return _word(AUDIT_ACTIONS, name, _)


def source(name: str, _) -> str:
    return _word(AUDIT_SOURCES, name, _)


def permission(name: str, _) -> str:
    return _word(PERMISSIONS, name, _)


def field(name: str, _) -> str:
    if name.startswith("settings_json.params."):
        return param(name.rsplit(".", 1)[1], _)
    if name.startswith(("settings_json.templates.", "template_upload.")):
        return role(name.rsplit(".", 1)[1], _)
    if name.startswith("settings_json."):
        return field(name.split(".", 1)[1], _)
    return _word(FIELDS, name, _)


def actor(text: str | None, _) -> str:
    """"admin:serg" → "serg"; "os:anna" → "anna (command line)"; the system's own names in words."""
    kind, sep, who = (text or "").partition(":")
    if sep and kind == "admin":
        return who
    if sep and kind == "os":
        return _("{user} (command line)", user=who)
    return _(ACTORS[text]) if text in ACTORS else (text or "—")


def kind(mime: str | None) -> str:
    """"image/jpeg" → "JPEG": a file's type as people name it."""
    sub = (mime or "").partition("/")[2]
    return {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "heic": "HEIC", "heif": "HEIF"}.get(sub, sub.upper() or "—")


def op_key_words(key: str, _) -> str:
    """A message's "gemini/style_transfer" as "Style transfer (Google Gemini)"."""
    provider_id, _sep, operation_id = key.partition("/")
    return operation(provider_id, operation_id, _)
