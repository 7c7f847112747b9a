"""Live settings: T_sync_response, result retention, the ingest password, provider API keys.

Defaults come from the config file; a value set through the CLI or the admin API is stored in
PostgreSQL and wins from the next ingest on (running jobs keep the deadline they were given).
The ingest password is stored as a keyed hash (HMAC-SHA256 under a key derived from the data
dir's settings key) beside a copy encrypted with that key, which a signed-in admin may reveal to
hand it to a new booth (audited); a provider key encrypted with the same key (secrets.py). The
database alone holds neither.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from photoslot import audit, public_address, secrets, studio_time
from photoslot.db import Json
from photoslot.errors import Conflict, NotFound, ValidationError
from photoslot.logs import event
from photoslot.passwords import generate_readable

SYNC_KEY = "sync_response_seconds"
RETENTION_KEY = "result_retention_hours"
PASSWORD_KEY = secrets.INGEST_PASSWORD_KEY
PASSWORD_CHANNEL = "photoslot_ingest_password"  # NOTIFY on every change of that row (migration 0008)
PROVIDER_KEY_PREFIX = secrets.PROVIDER_KEY_PREFIX  # + provider id; the API key set over the admin API (wins over config)
PROVIDER_NAMES = ("gemini", "turbotext")
# Where the last `serve` listens ({scheme}://host:port); not a setting an admin changes.
SERVED_BASE_URL_KEY = "served_base_url"
# Anyone on the studio network may guess it, so the length is what the throttle buys time with:
# 12 characters from a typed alphabet are out of reach at a few guesses per minute per address.
INGEST_PASSWORD_MIN = 12
INGEST_PASSWORD_MAX = 256

log = logging.getLogger("photoslot.settings")


@dataclass
class LiveSettings:
    sync_response_seconds: float
    result_retention_hours: float
    ingest_password: dict | None  # the stored record (keyed hash, sealed copy), never the password
    bounds: tuple[float, float]
    meta: dict  # key -> {"updated_at", "updated_by"}
    provider_keys_stored: tuple = ()  # providers whose API key is stored in the database


def from_rows(cfg, values: dict, meta: dict | None = None) -> LiveSettings:
    lo, hi = cfg.get("ingest.sync_response_bounds")
    return LiveSettings(
        sync_response_seconds=float(values.get(SYNC_KEY, cfg.get("ingest.sync_response_seconds"))),
        result_retention_hours=float(values.get(RETENTION_KEY, cfg.get("results.retention_hours"))),
        ingest_password=values.get(PASSWORD_KEY),
        bounds=(float(lo), float(hi)),
        meta=meta or {},
        provider_keys_stored=tuple(k[len(PROVIDER_KEY_PREFIX):] for k in values if k.startswith(PROVIDER_KEY_PREFIX)),
    )


async def load(db, cfg) -> LiveSettings:
    rows = await db.fetchall("settings_all")
    values = {r["key"]: r["value"] for r in rows}
    meta = {r["key"]: {"updated_at": r["updated_at"], "updated_by": r["updated_by"]} for r in rows}
    return from_rows(cfg, values, meta)


def public_view(s: LiveSettings, cfg) -> dict:
    """What `settings show` and the admin API may reveal: never a secret value."""
    pw_meta = s.meta.get(PASSWORD_KEY, {})
    return {
        "sync_response_seconds": s.sync_response_seconds,
        "sync_response_bounds": list(s.bounds),
        "result_retention_hours": s.result_retention_hours,
        "ingest_password_set": s.ingest_password is not None,
        # an old photoslot's scrypt record keeps no copy to show until the booth's next shot with it
        "ingest_password_revealable": bool((s.ingest_password or {}).get("sealed")),
        "ingest_password_updated_at": pw_meta.get("updated_at"),
        "ingest_password_updated_by": pw_meta.get("updated_by"),
        "provider_keys": {
            name: {"is_configured": name in s.provider_keys_stored or bool(cfg.get(f"providers.{name}.api_key")),
                   "source": "settings" if name in s.provider_keys_stored
                   else ("config" if cfg.get(f"providers.{name}.api_key") else None),
                   "updated_at": s.meta.get(PROVIDER_KEY_PREFIX + name, {}).get("updated_at"),
                   "updated_by": s.meta.get(PROVIDER_KEY_PREFIX + name, {}).get("updated_by")}
            for name in PROVIDER_NAMES
        },
    }


def check_changes(bounds: tuple[float, float], *, sync_response_seconds=None, ingest_password=None,
                  result_retention_hours=None, provider_keys: dict | None = None, public_base_url=None,
                  time_zone=None) -> dict[str, object]:
    """{settings key: value to store} for the requested changes, every one checked (a per-field
    ValidationError otherwise). The password and provider keys come back as given: update() stores
    the password's hash and the keys encrypted. `public_base_url` and `time_zone` given as "" go
    back to their default (stored as null)."""
    errors: dict[str, str] = {}
    changes: dict[str, object] = {}
    for key, given, checked in ((public_address.KEY, public_base_url, public_address.check),
                                (studio_time.KEY, time_zone, lambda v: studio_time.parse(v).name if v else None)):
        if given is None:
            continue
        try:
            changes[key] = checked(given)
        except ValidationError as exc:
            errors.update(exc.details)
    if sync_response_seconds is not None:
        lo, hi = bounds
        try:
            value = float(sync_response_seconds)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float
            value = None
        if value is None or not (lo <= value <= hi):
            errors["sync_response_seconds"] = f"must be between {lo:g} and {hi:g} seconds"
        else:
            changes[SYNC_KEY] = value
    if result_retention_hours is not None:
        try:
            hours = float(result_retention_hours)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float
            hours = None
        if hours is None or not (1 <= hours <= 24 * 365):
            errors["result_retention_hours"] = "must be between 1 and 8760 hours"
        else:
            changes[RETENTION_KEY] = hours
    if ingest_password is not None:
        if not isinstance(ingest_password, str) or not (INGEST_PASSWORD_MIN <= len(ingest_password)
                                                        <= INGEST_PASSWORD_MAX):
            errors["ingest_password"] = f"must be {INGEST_PASSWORD_MIN} to {INGEST_PASSWORD_MAX} characters"
        else:
            changes[PASSWORD_KEY] = ingest_password
    for name, key in (provider_keys or {}).items():
        if name not in PROVIDER_NAMES:
            errors[f"provider_keys.{name}"] = f"unknown provider; one of: {', '.join(PROVIDER_NAMES)}"
        elif not isinstance(key, str) or not (8 <= len(key) <= 512) or any(c.isspace() for c in key):
            errors[f"provider_keys.{name}"] = "must be 8 to 512 characters without spaces"
        else:
            changes[PROVIDER_KEY_PREFIX + name] = key
    if errors:
        raise ValidationError(errors)
    if not changes:
        raise ValidationError({"settings": "nothing to change"})
    return changes


_local_generation = 0


def local_generation() -> int:
    """Bumped whenever this process stores a new ingest password: the ingest's copy of the record
    (passwords.IngestPasswordCheck) reads it again at once instead of within a second."""
    return _local_generation


def _changed_here() -> None:
    global _local_generation
    _local_generation += 1


def _stored(cfg, key: str, plaintext: str) -> dict:
    """The stored form of a secret setting: the ingest password keyed and sealed, a provider key sealed."""
    if key == PASSWORD_KEY:
        return secrets.ingest_password_record(cfg, plaintext)
    return secrets.sealed(cfg, plaintext)


async def update(db, cfg, clock, *, actor: str, source: str, sync_response_seconds=None,
                 ingest_password: str | None = None, result_retention_hours=None,
                 provider_keys: dict | None = None, public_base_url: str | None = None,
                 time_zone: str | None = None, generated: bool = False) -> LiveSettings:
    """Check, store and audit live settings changes; they apply from the next ingest on (the public
    address: from the next URL handed out, in every process). `generated`: the ingest password was
    made by photoslot (the audit says so)."""
    current = await load(db, cfg)
    if public_base_url is not None and cfg.get("server.public_base_url"):
        fixed = public_address.resolve(cfg, None).fixed_by
        raise ValidationError({public_address.KEY: f"is set in {fixed} (server.public_base_url); change it there"})
    changes = check_changes(current.bounds, sync_response_seconds=sync_response_seconds,
                            ingest_password=ingest_password, result_retention_hours=result_retention_hours,
                            provider_keys=provider_keys, public_base_url=public_base_url, time_zone=time_zone)
    # encrypted inside the transaction, under the secrets lock
    secret_changes = {k: changes.pop(k) for k in list(changes) if k.startswith(PROVIDER_KEY_PREFIX) or k == PASSWORD_KEY}
    now = clock.now()
    before = await db.fetchall("settings_all")  # what the changed values were, for the audit
    async with db.transaction() as tx:
        for key, value in changes.items():
            await tx.execute("setting_upsert", key=key, value=Json(value), now=now, actor=actor)
        if secret_changes:
            await tx.execute("secrets_lock_shared")  # a rotation cannot drop the key we encrypt with
            for key, plaintext in secret_changes.items():
                await tx.execute("setting_upsert", key=key, value=Json(_stored(cfg, key, plaintext)), now=now,
                                 actor=actor)
        # the audit names a secret's change, never its value or hash
        audited = dict(changes)
        audited.update({k: "<changed>" for k in secret_changes})
        if PASSWORD_KEY in secret_changes and generated:
            audited[PASSWORD_KEY] = "<generated>"
        was = {k: v for k, v in _previous(current, changes, before).items() if v is not None}
        if was:  # what the changed values were (never a secret's): the audit shows before → after
            audited["was"] = was
        await audit.record(tx, clock, actor=actor, source=source, action="settings.update",
                           target="settings", details=audited)
        if public_address.KEY in changes:  # every process hands out the new address from now on
            await tx.execute("settings_announce", key=public_address.KEY)
    if public_address.KEY in changes:
        cfg.live_public_base_url = changes[public_address.KEY]
    if PASSWORD_KEY in secret_changes:
        _changed_here()
    return await load(db, cfg)


def _previous(current: LiveSettings, changes: dict, rows: list[dict]) -> dict:
    """The values the changed (non-secret) settings had: the window and retention as they were in
    force (the config's when none was stored), the address and zone as stored (None: the default)."""
    stored = {r["key"]: r["value"] for r in rows}
    effective = {SYNC_KEY: current.sync_response_seconds, RETENTION_KEY: current.result_retention_hours}
    return {k: effective.get(k, stored.get(k)) for k in changes if k != PASSWORD_KEY}


async def generate_ingest_password(db, cfg, clock, *, actor: str, source: str) -> str:
    """A new ingest password made by photoslot (`K7QM-X9PR-4TNH-W2ZD`: no look-alike characters),
    stored and audited like a typed one; returned once, to be shown to the admin."""
    password = generate_readable()
    await update(db, cfg, clock, actor=actor, source=source, ingest_password=password, generated=True)
    return password


async def reveal_ingest_password(db, cfg, clock, *, actor: str, source: str) -> dict:
    """The current ingest password, for an admin handing it to a new booth: {"value", "updated_at",
    "updated_by"}. Audited (who, when — never the value). The API, the CLI and the Settings page
    all come here."""
    row = await db.fetchone("setting_get", key=PASSWORD_KEY)
    if row is None:
        raise NotFound("no ingest password is set; set or generate one first")
    value = secrets.ingest_password_from(cfg, row["value"])
    if value is None:
        raise Conflict("this ingest password was set by an older photoslot, which kept only a hash: it becomes "
                       "showable after the next booth shot with it, or generate a new one")
    await audit.record(db, clock, actor=actor, source=source, action="settings.ingest_password_revealed",
                       target="settings", details={})
    event(log, "ingest_password_revealed", actor=actor, source=source)
    return {"value": value, "updated_at": row["updated_at"], "updated_by": row["updated_by"]}


async def upgrade_ingest_password(db, cfg, password: str, old_record: dict) -> None:
    """An old scrypt record, proven right by `password` just now: replaced by the keyed, sealed form,
    unless the record changed meanwhile. Who set the password and when stay as they were."""
    async with db.transaction() as tx:
        await tx.execute("secrets_lock_shared")
        done = await tx.fetchone("setting_replace_value", key=PASSWORD_KEY, old=Json(old_record),
                                 value=Json(secrets.ingest_password_record(cfg, password)))
    if done is not None:
        _changed_here()
        event(log, "ingest_password_rekeyed", was="scrypt")


async def ensure_ingest_password(db, cfg, clock) -> str | None:
    """First start: generate an ingest password if none is set; returns it (to print once)."""
    password = generate_readable()
    inserted = await db.fetchone("setting_insert_if_missing", key=PASSWORD_KEY,
                                 value=secrets.ingest_password_record(cfg, password),
                                 now=clock.now(), actor="first-start")
    if inserted:
        _changed_here()
    return password if inserted else None


async def stored_ingest_password(db) -> dict | None:
    """The ingest password's stored record (the ingest's check reads it through this)."""
    row = await db.fetchone("setting_get", key=PASSWORD_KEY)
    return row["value"] if row else None


_unreadable_reported: set[str] = set()


async def provider_api_key(db, cfg, name: str) -> str | None:
    """The key a provider client should use: one set over the admin API wins over the config file.
    A stored key this data dir cannot decrypt is reported (once per process) and the config's used."""
    rows = await db.fetchall("settings_all")
    stored = next((r["value"] for r in rows if r["key"] == PROVIDER_KEY_PREFIX + name), None)
    return provider_api_key_from(cfg, name, stored)


def provider_api_key_from(cfg, name: str, stored) -> str | None:
    """provider_api_key() given the stored setting's value (None: none stored) — a worker's claim
    reads it in the claim's own round trip (queries/jobs.sql job_claim)."""
    if stored is not None:
        try:
            return secrets.unsealed(cfg, stored)
        except secrets.SecretUnreadable as exc:
            if name not in _unreadable_reported:
                _unreadable_reported.add(name)
                event(log, "provider_key_unreadable", logging.ERROR, provider=name, error=exc.message)
    return cfg.get(f"providers.{name}.api_key")


async def record_served_base_url(db, clock, url: str) -> None:
    """`serve` says where it listens, so `slot list` in another shell and `work` on another host hand
    out links to the port it really uses (`serve --port 8090`), not the config file's."""
    await db.execute("setting_upsert", key=SERVED_BASE_URL_KEY, value=Json(url), now=clock.now(), actor="serve")


async def served_base_url(db) -> str | None:
    row = await db.fetchone("setting_get", key=SERVED_BASE_URL_KEY)
    return row["value"] if row else None
