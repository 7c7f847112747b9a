"""Secrets at rest: the files under `<data_dir>/secrets/` and the encryption of stored provider keys.

Everything here lives in the data dir, never in PostgreSQL, so a copy of the database alone
reveals no secret:

- `settings.key` — the Fernet keys that encrypt provider API keys set through settings (the admin
  API's `provider_keys`, `photoslot settings provider-key`) and the ingest password's sealed copy,
  and from which the ingest password's HMAC key is derived (passwords.py). One key per line,
  newest first: the newest encrypts, every listed key decrypts, so a process that read the file
  just before a rotation still reads every stored value. Created on first start; `photoslot
  secrets rotate` replaces it. A worker host with a data dir of its own needs a copy of this file.
- the admin accounts and the JWT key (`users.py`), and `first-start-passwords.txt` when `serve`
  ran without a terminal to show them on.

Writers of encrypted settings take a shared advisory lock and a rotation (or the start-up
migration of plain-text keys) the exclusive one, so no value is ever written with a key that a
rotation is about to drop.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from photoslot import audit, passwords
from photoslot.errors import PhotoslotError
from photoslot.logs import event

log = logging.getLogger("photoslot.secrets")

KEY_FILE = "settings.key"
FIRST_START_FILE = "first-start-passwords.txt"
PROVIDER_KEY_PREFIX = "provider_key."  # + provider id: the settings rows whose values are encrypted
INGEST_PASSWORD_KEY = "ingest_password"  # {"algo", "kid", "hash", "sealed"} (passwords.keyed_record)


class SecretUnreadable(PhotoslotError):
    """A stored value that none of the keys in settings.key decrypts (wrong or lost key file)."""

    code = "secret_unreadable"
    http_status = 500
    exit_code = 1


def secrets_dir(cfg) -> Path:
    return cfg.data_dir / "secrets"


def write_private(path: Path, text: str, *, exclusive: bool) -> bool:
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
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file, never half of one
    return True


# ---------------------------------------------------------------- the settings key

def key_path(cfg) -> Path:
    return secrets_dir(cfg) / KEY_FILE


_cache: dict[Path, tuple[tuple, list[bytes]]] = {}


def _read_keys(path: Path, *, fresh: bool = False) -> list[bytes]:
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp and not fresh:
        return cached[1]
    keys = [line.strip().encode("ascii") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not keys:
        raise SecretUnreadable(f"{path} holds no key")
    _cache[path] = (stamp, keys)
    return keys


def ensure_key(cfg) -> Path:
    """The settings key file, created (0600) if it does not exist yet: at first start, or by the first
    command that stores a provider key."""
    path = key_path(cfg)
    if not path.exists():
        write_private(path, Fernet.generate_key().decode("ascii") + "\n", exclusive=True)
    return path


def _fernet(cfg, *, fresh: bool = False) -> MultiFernet:
    """The keys for decrypting. A missing file is not created here: a new key would decrypt nothing
    (a worker host without a copy of the data dir's key file must say so, not invent one)."""
    path = key_path(cfg)
    try:
        return MultiFernet([Fernet(k) for k in _read_keys(path, fresh=fresh)])
    except FileNotFoundError:
        raise SecretUnreadable(f"{path} is missing: copy the key file of the data dir that stored the "
                               "provider keys (or store them again)") from None
    except ValueError:  # not a Fernet key
        raise SecretUnreadable(f"{path} does not hold a valid key") from None


def encrypt(cfg, plaintext: str) -> str:
    ensure_key(cfg)
    return _fernet(cfg).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(cfg, token: str) -> str:
    try:
        return _fernet(cfg).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        pass
    try:  # the file may have changed within the stat's resolution: read it once more
        return _fernet(cfg, fresh=True).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretUnreadable(f"a stored provider key cannot be decrypted with {key_path(cfg)}: "
                               "is this the data dir's own key file (copied to every host)?") from None


_derived: dict[Path, tuple[tuple, dict[str, bytes]]] = {}


def ingest_keys(cfg) -> dict[str, bytes]:
    """The ingest password's HMAC keys by kid, one per key in settings.key (newest first). The
    file is read again when it changed (a rotation)."""
    path = key_path(cfg)
    try:
        keys = _read_keys(path)
    except (FileNotFoundError, SecretUnreadable):
        return {}
    stamp = tuple(keys)
    cached = _derived.get(path)
    if cached is None or cached[0] != stamp:
        derived = {}
        for k in keys:
            try:
                kid, key = passwords.derive_key(k)
            except ValueError:  # not a Fernet key: _fernet says so where it matters
                continue
            derived[kid] = key
        cached = _derived[path] = (stamp, derived)
    return cached[1]


def ingest_password_record(cfg, password: str) -> dict:
    """The stored form of a new ingest password: keyed with the newest settings key, sealed with it."""
    ensure_key(cfg)
    newest = _read_keys(key_path(cfg))[0]
    kid, key = passwords.derive_key(newest)
    return passwords.keyed_record(password, kid, key, encrypt(cfg, password))


def ingest_password_from(cfg, record: dict | None) -> str | None:
    """The ingest password itself, from its sealed copy (None: not stored in a form that keeps one)."""
    if not record or not record.get("sealed"):
        return None
    return decrypt(cfg, record["sealed"])


def sealed(cfg, plaintext: str) -> dict:
    """The settings value stored for a secret."""
    return {"encrypted": encrypt(cfg, plaintext)}


def unsealed(cfg, stored: dict | None) -> str | None:
    """The secret of a settings value: encrypted, or plain text written before encryption existed."""
    if not stored:
        return None
    if "encrypted" in stored:
        return decrypt(cfg, stored["encrypted"])
    return stored.get("value")


async def _reseal_ingest_password(tx, cfg, fernet: MultiFernet, newest: bytes) -> bool:
    """Under the exclusive lock: the ingest password sealed and keyed with `newest` (an old scrypt
    record has no sealed copy and stays as it is)."""
    for row in await tx.fetchall("secret_settings_for_update", prefix=INGEST_PASSWORD_KEY):
        if row["key"] != INGEST_PASSWORD_KEY or not (row["value"] or {}).get("sealed"):
            continue
        try:
            password = fernet.decrypt(row["value"]["sealed"].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable(f"the ingest password cannot be decrypted with any key in {key_path(cfg)}; "
                                   "nothing was changed") from None
        kid, key = passwords.derive_key(newest)
        token = Fernet(newest).encrypt(password.encode("utf-8")).decode("ascii")
        await tx.execute("secret_setting_reseal", key=INGEST_PASSWORD_KEY,
                         value=passwords.keyed_record(password, kid, key, token))
        return True
    return False


async def _reseal_all(tx, cfg, fernet: MultiFernet) -> int:
    """Under the exclusive lock: every stored secret encrypted with the newest key of `fernet`."""
    count = 0
    for row in await tx.fetchall("secret_settings_for_update", prefix=PROVIDER_KEY_PREFIX):
        stored = row["value"] or {}
        if "encrypted" in stored:
            try:
                token = fernet.rotate(stored["encrypted"].encode("ascii")).decode("ascii")
            except InvalidToken:
                raise SecretUnreadable(f"settings {row['key']!r} cannot be decrypted with any key in "
                                       f"{key_path(cfg)}; nothing was changed") from None
        elif isinstance(stored.get("value"), str):
            token = fernet.encrypt(stored["value"].encode("utf-8")).decode("ascii")
        else:
            continue
        await tx.execute("secret_setting_reseal", key=row["key"], value={"encrypted": token})
        count += 1
    return count


async def encrypt_plaintext(ctx) -> int:
    """At start: provider keys stored in plain text (before encryption existed) get encrypted."""
    cfg = ctx.cfg
    ensure_key(cfg)
    async with ctx.db.transaction() as tx:
        await tx.execute("secrets_lock")
        plain = [r for r in await tx.fetchall("secret_settings_for_update", prefix=PROVIDER_KEY_PREFIX)
                 if "encrypted" not in (r["value"] or {})]
        if not plain:
            return 0
        fernet = _fernet(cfg, fresh=True)
        for row in plain:
            value = (row["value"] or {}).get("value")
            if isinstance(value, str):
                await tx.execute("secret_setting_reseal", key=row["key"],
                                 value={"encrypted": fernet.encrypt(value.encode("utf-8")).decode("ascii")})
        await audit.record(tx, ctx.clock, actor="system", source="start", action="secrets.encrypt_stored",
                           target="provider_keys", details={"encrypted": len(plain)})
    event(log, "stored_keys_encrypted", count=len(plain), key_file=key_path(cfg))
    return len(plain)


async def rotate(ctx, *, actor: str, source: str) -> dict:
    """`photoslot secrets rotate`: a new settings key; every stored secret re-encrypted with it; the
    old keys dropped. Audited with the count, never a key."""
    cfg = ctx.cfg
    path = ensure_key(cfg)
    old = _read_keys(path, fresh=True)
    new = Fernet.generate_key()
    # Both keys first, so processes reading the file meanwhile decrypt old and new values alike.
    write_private(path, "\n".join(k.decode("ascii") for k in [new, *old]) + "\n", exclusive=False)
    try:
        async with ctx.db.transaction() as tx:
            await tx.execute("secrets_lock")
            both = MultiFernet([Fernet(k) for k in [new, *old]])
            count = await _reseal_all(tx, cfg, both)
            ingest = await _reseal_ingest_password(tx, cfg, both, new)
            await audit.record(tx, ctx.clock, actor=actor, source=source, action="secrets.rotate",
                               target="provider_keys", details={"re_encrypted": count, "key_file": str(path),
                                                                "ingest_password": ingest})
    except BaseException:
        write_private(path, "\n".join(k.decode("ascii") for k in old) + "\n", exclusive=False)
        raise
    write_private(path, new.decode("ascii") + "\n", exclusive=False)
    event(log, "secrets_rotated", re_encrypted=count, ingest_password=ingest, key_file=path)
    return {"re_encrypted": count, "key_file": str(path), "old_keys_dropped": len(old), "ingest_password": ingest}


# ---------------------------------------------------------------- first-start passwords

def deliver_first_start(cfg, lines: list[str], *, out, interactive: bool) -> Path | None:
    """First-start passwords: on the terminal when there is one; otherwise (a service manager, whose
    journal keeps stdout) appended to a 0600 file under secrets/, whose path — never a password —
    is printed and logged."""
    if not lines:
        return None
    if interactive:
        for line in lines:
            out(line)
        return None
    path = secrets_dir(cfg) / FIRST_START_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        if hasattr(os, "fchmod"):
            os.fchmod(fh.fileno(), 0o600)  # an existing file, too, is the owner's only
        fh.write("".join(line + "\n" for line in lines))
    event(log, "first_start_passwords_written", file=path)
    out(f"first-start passwords written to {path} (readable by this user only; delete it once noted)")
    return path
