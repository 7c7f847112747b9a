"""The two admin accounts, `serg` and `igor`: passwords, sessions, and the JWT signing secret.

Passwords and the JWT key live in `<data_dir>/secrets/` (mode 0600), not in the database: whoever
can read the data dir owns the studio anyway, while a database dump or a managed PostgreSQL never
holds them. Passwords are generated at first start, shown once and stored only as scrypt records;
no endpoint creates users or changes passwords — `photoslot users reset NAME` is the one way to
get a new one.

Sessions: each admin has a session epoch in PostgreSQL (a settings row, shared by every process).
A token carries the epoch it was issued in and is valid only while it is still the current one;
`users reset`, `users revoke` and `POST /api/logout` move it on, ending every token of that admin
on every process at once.
"""
from __future__ import annotations

import json
import os
from photoslot import audit, secrets
from photoslot.errors import ValidationError
from photoslot.passwords import generate_password, hash_password

ADMINS = ("serg", "igor")
ADMINS_FILE = "admins.json"
JWT_SECRET_FILE = "jwt_secret"


secrets_dir = secrets.secrets_dir


def load_admins(cfg) -> dict[str, dict]:
    """name → scrypt record; empty when the accounts were never created."""
    path = secrets_dir(cfg) / ADMINS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {name: rec for name, rec in data.get("users", {}).items() if name in ADMINS}


def ensure_admins(cfg) -> dict[str, str]:
    """First start: create both accounts with random passwords. Returns {name: password} for the
    accounts created now (to print once), {} when they already exist."""
    jwt_secret(cfg)  # generated now too, so the first login does not race to create it
    path = secrets_dir(cfg) / ADMINS_FILE
    if path.exists():
        return {}
    passwords = {name: generate_password(12) for name in ADMINS}
    doc = {"users": {name: hash_password(pw) for name, pw in passwords.items()}}
    if not secrets.write_private(path, json.dumps(doc, indent=1), exclusive=True):
        return {}  # another process created them a moment ago and shows them
    return passwords


def check_name(name: str) -> str:
    if name not in ADMINS:
        raise ValidationError({"name": f"unknown admin {name!r}; the admins are {' and '.join(ADMINS)}"})
    return name


def reset(cfg, name: str) -> str:
    """A new random password for one admin; the other keeps theirs. Returns it (shown once)."""
    check_name(name)
    records = load_admins(cfg)
    password = generate_password(12)
    records[name] = hash_password(password)
    for other in ADMINS:  # a reset before the first `serve` still creates the other account
        records.setdefault(other, hash_password(generate_password(24)))
    secrets.write_private(secrets_dir(cfg) / ADMINS_FILE, json.dumps({"users": records}, indent=1), exclusive=False)
    return password


async def reset_password(ctx, name: str, *, actor: str, source: str) -> str:
    """`photoslot users reset NAME`: new password and every session of that admin ended, audited
    (the audit never holds the password)."""
    password = reset(ctx.cfg, name)
    await end_sessions(ctx, name, actor=actor, source=source, action="users.reset",
                       details={"password": "<changed>"})
    return password


def _epoch_key(name: str) -> str:
    return f"session_epoch.{name}"


async def session_epoch(db, name: str) -> int:
    """The current session epoch of an admin (0 until the first sign-out, revoke or reset)."""
    row = await db.fetchone("session_epoch_get", key=_epoch_key(name))
    return int(row["epoch"])


async def session_state(db, name: str, sid: str) -> tuple[int, bool]:
    """(the admin's session epoch, whether the web session `sid` was signed out), in one round trip."""
    row = await db.fetchone("session_state", key=_epoch_key(name), sid=sid)
    return int(row["epoch"]), bool(row["ended"])


async def end_sessions(ctx, name: str, *, actor: str, source: str, action: str = "users.revoke",
                       details: dict | None = None) -> int:
    """Every token of `name` issued so far stops working, in every process, from the next request
    on (`users revoke`, sign-out, and part of `users reset`). Audited; returns the new epoch."""
    check_name(name)
    async with ctx.db.transaction() as tx:
        row = await tx.fetchone("session_epoch_bump", key=_epoch_key(name), now=ctx.clock.now(), actor=actor)
        await audit.record(tx, ctx.clock, actor=actor, source=source, action=action, target=name,
                           details={**(details or {}), "sessions": "ended"})
    return int(row["epoch"])


def jwt_secret(cfg) -> bytes:
    """The HS256 key, generated once into the secrets dir; every process of the data dir shares it."""
    path = secrets_dir(cfg) / JWT_SECRET_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        secrets.write_private(path, os.urandom(32).hex(), exclusive=True)
        text = path.read_text(encoding="utf-8").strip()
    return bytes.fromhex(text)
