"""Salted scrypt hashes for the ingest password and the admin accounts.

The ingest password is checked on every shot, so a successful check is remembered in-process as
an HMAC under a random per-process key: the next check with the same password costs microseconds,
while a wrong password always pays the full scrypt price.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> dict:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return {"algo": "scrypt", "n": _N, "r": _R, "p": _P, "salt": salt.hex(), "hash": digest.hex()}


def verify_password(password: str, record: dict) -> bool:
    if not record or record.get("algo") != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(record["salt"]),
                            n=record["n"], r=record["r"], p=record["p"], dklen=32)
    return hmac.compare_digest(digest.hex(), record["hash"])


def generate_password(nbytes: int = 12) -> str:
    return secrets.token_urlsafe(nbytes)


class CachedVerifier:
    def __init__(self, max_entries: int = 64) -> None:
        self._key = os.urandom(32)
        self._ok: dict[tuple[str, bytes], None] = {}
        self._max = max_entries

    def _tag(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()

    async def verify(self, password: str, record: dict | None) -> bool:
        if not record:
            return False
        key = (record["hash"], self._tag(password))
        if key in self._ok:  # dict lookup on an HMAC: no timing signal about the password itself
            return True
        ok = await asyncio.to_thread(verify_password, password, record)
        if ok:
            if len(self._ok) >= self._max:
                self._ok.pop(next(iter(self._ok)))
            self._ok[key] = None
        return ok
