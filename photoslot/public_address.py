"""The public address: the base of every URL photoslot hands out — the booths' ingest URLs, result
links, and the links Turbotext downloads the photo and templates from.

Where it comes from, first found wins:
1. `server.public_base_url` in the config file or its environment variable — then it is fixed
   there and the Settings page shows it read-only, saying where it is set;
2. the live setting `public_base_url` an admin saves on the Settings page (stored in PostgreSQL,
   followed by every process at once: a NOTIFY on change, a poll as the fallback);
3. where the last `serve` listens, then this config's own host and port — 127.0.0.1 when it
   listens on every interface, an address that works on this PC only.

`Config.public_base_url()` is the one function every URL is built from; it reads this process's
copy of the live setting (`Config.live_public_base_url`, kept fresh by `refresh`). `kind` says what
an address can reach: loopback (this PC only), private (this network), public (the internet may
reach it — what Turbotext needs, since it downloads the photo itself).
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from photoslot.db import DatabaseUnavailable
from photoslot.errors import ValidationError

KEY = "public_base_url"  # the live setting; its value null = not set
CHANNEL = "photoslot_settings"  # NOTIFY payload: the setting's key
POLL_SECONDS = 10.0  # the fallback refresh when a notification is missed
MAX_LENGTH = 300
LOOPBACK, PRIVATE, PUBLIC = "loopback", "private", "public"
_PRIVATE_SUFFIXES = (".local", ".lan", ".home", ".internal", ".home.arpa", ".intranet", ".corp")

log = logging.getLogger("photoslot.settings")


def check(text) -> str | None:
    """The address as it will be stored (no trailing slash), None for "not set"; a ValidationError
    on the field `public_base_url` for anything a booth could not use as the start of a URL."""
    value = str(text or "").strip()
    if not value:
        return None

    def bad(message: str) -> ValidationError:
        return ValidationError({KEY: message})

    if len(value) > MAX_LENGTH or any(c.isspace() or ord(c) < 32 for c in value):
        raise bad(f"must be a URL such as http://192.168.1.20:8080 (at most {MAX_LENGTH} characters, no spaces)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise bad("must start with http:// or https://, e.g. http://192.168.1.20:8080")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise bad("the port must be a number from 1 to 65535") from None
    if not host:
        raise bad("must name a host, e.g. http://192.168.1.20:8080")
    if parts.username is not None or parts.password is not None:
        raise bad("must not carry a user name or password")
    if parts.query or parts.fragment:
        raise bad("must not have a query (?…) or fragment (#…)")
    if port == 0:
        raise bad("the port must be a number from 1 to 65535")
    return value.rstrip("/")


def kind(url: str) -> str:
    """loopback, private or public: who can reach an address, judged from its host."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost"):
            return LOOPBACK
        if "." not in host or host.endswith(_PRIVATE_SUFFIXES):
            return PRIVATE
        return PUBLIC  # a DNS name: reachable from wherever it resolves, presumably the internet
    if ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback):
        return LOOPBACK
    if ip.is_unspecified:
        return LOOPBACK
    return PUBLIC if ip.is_global else PRIVATE


@dataclass(frozen=True)
class Address:
    url: str
    source: str            # "config", "environment", "setting", "served" (where serve listens), "listen"
    kind: str              # loopback, private, public
    fixed_by: str | None = None  # the config file or variable that fixes it (the page shows it read-only)

    @property
    def this_pc_only(self) -> bool:
        return self.kind == LOOPBACK

    @property
    def reachable_from_internet(self) -> bool:
        return self.kind == PUBLIC

    @property
    def is_set(self) -> bool:
        """Chosen by someone (config or an admin), not guessed from where serve listens."""
        return self.source in ("config", "environment", "setting")


def stored_value(value) -> str | None:
    return value if isinstance(value, str) and value else None


def resolve(cfg, stored) -> Address:
    """The address in force, given the live setting's stored value."""
    configured = cfg.get("server.public_base_url")
    if configured:
        url = str(configured).rstrip("/")
        variable = cfg.from_env.get("server.public_base_url")
        if variable:
            return Address(url, "environment", kind(url), fixed_by=variable)
        where = str(cfg.source) if cfg.source is not None else "the configuration"
        return Address(url, "config", kind(url), fixed_by=where)
    live = stored_value(stored)
    if live:
        return Address(live, "setting", kind(live))
    url = cfg.fallback_base_url()
    return Address(url, "served" if cfg.served_base_url else "listen", kind(url))


async def load(db, cfg) -> Address:
    """The address in force now, read from the database (doctor, the Settings page, the checklist)."""
    row = await db.fetchone("setting_get", key=KEY)
    stored = row["value"] if row else None
    cfg.live_public_base_url = stored_value(stored)
    return resolve(cfg, stored)


async def refresh(ctx) -> None:
    """This process's copy of the live setting, read again (a NOTIFY said it changed, or the poll)."""
    with contextlib.suppress(DatabaseUnavailable):
        await load(ctx.db, ctx.cfg)


async def keep_fresh(ctx, interval: float = POLL_SECONDS) -> None:
    """The fallback for a missed notification: a cheap read every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        await refresh(ctx)
