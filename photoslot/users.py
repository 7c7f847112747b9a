"""The two admin accounts, `serg` and `igor`, and the JWT signing secret.

Both live in `<data_dir>/secrets/` (mode 0600), not in the database: whoever can read the data dir
owns the studio anyway, while a database dump or a managed PostgreSQL never holds them. Passwords
are generated at first start, shown once and stored only as scrypt records; no endpoint creates
users or changes passwords — `photoslot users reset NAME` is the one way to get a new one.
"""
from __future__ import annotations

import json
import os
import secrets as pysecrets
from pathlib import Path

from photoslot import audit
from photoslot.errors import ValidationError
from photoslot.passwords import generate_password, hash_password

ADMINS = ("serg", "igor")
ADMINS_FILE = "admins.json"
JWT_SECRET_FILE = "jwt_secret"


def secrets_dir(cfg) -> Path:
    return cfg.data_dir / "secrets"


def _write_private(path: Path, text: str, *, exclusive: bool) -> bool:
    """Write `text` to `path` readable by the owner only. With `exclusive`, only if the file does not
    exist yet (False when another process created it first). The file never exists with wider rights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(path.parent, 0o700)
    except OSError:  # e.g. a shared mount that ignores modes; the files are still 0600
        pass
    if exclusive:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        return True
    tmp = path.with_name(f".{path.name}.{pysecrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)  # atomic: a concurrent login reads the old or the new file, never half of one
    return True


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
    if not _write_private(path, json.dumps(doc, indent=1), exclusive=True):
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
    _write_private(secrets_dir(cfg) / ADMINS_FILE, json.dumps({"users": records}, indent=1), exclusive=False)
    return password


async def reset_password(ctx, name: str, *, actor: str, source: str) -> str:
    """`photoslot users reset NAME`: new password, audited (the audit never holds it)."""
    password = reset(ctx.cfg, name)
    await audit.record(ctx.db, ctx.clock, actor=actor, source=source, action="users.reset", target=name,
                       details={"password": "<changed>"})
    return password


def jwt_secret(cfg) -> bytes:
    """The HS256 key, generated once into the secrets dir; every process of the data dir shares it."""
    path = secrets_dir(cfg) / JWT_SECRET_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        _write_private(path, pysecrets.token_hex(32), exclusive=True)
        text = path.read_text(encoding="utf-8").strip()
    return bytes.fromhex(text)
