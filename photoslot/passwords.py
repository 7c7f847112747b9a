"""Salted scrypt hashes for the ingest password and the admin accounts.

The ingest password is checked on every shot, so a successful check is remembered in-process as
an HMAC under a random per-process key: the next check with the same password costs microseconds,
while a wrong password always pays the full scrypt price (~50 ms of CPU).

Those scrypt runs happen on a small executor of their own (`CHECK_THREADS` threads), never on
the default one the image work uses, and at most `CHECK_QUEUE` checks may wait for it: beyond
that a check is refused at once (`CheckerBusy`) instead of queueing CPU. A wrong password holds
its thread for at least `WRONG_CHECK_SECONDS` (asleep after scrypt), so guessing can buy at most
about a quarter of one core, however many clients guess. A password already
known to be right needs no thread at all, so a booth is never refused by a flood of guesses;
the same password checked by several shots at once runs scrypt once.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import os
import secrets
import time

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


CHECK_THREADS = 1   # password checks running at once, whatever the guessing rate
CHECK_QUEUE = 4     # checks allowed to wait for a thread; more are refused at once
WRONG_CHECK_SECONDS = 1.0  # a wrong password holds its thread this long: scrypt (~50-70 ms of CPU), then asleep


def _slow_when_wrong(password: str, record: dict, wrong_seconds: float) -> bool:
    started = time.monotonic()
    ok = verify_password(password, record)
    if not ok:
        time.sleep(max(0.0, wrong_seconds - (time.monotonic() - started)))
    return ok


class CheckerBusy(Exception):
    """Every password-check thread is busy and the queue is full: answer "busy", do not wait."""


class CachedVerifier:
    def __init__(self, max_entries: int = 64, *, threads: int = CHECK_THREADS, queue: int = CHECK_QUEUE,
                 wrong_seconds: float = WRONG_CHECK_SECONDS) -> None:
        self._key = os.urandom(32)
        self._ok: dict[tuple[str, bytes], None] = {}
        self._max = max_entries
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads,
                                                               thread_name_prefix="photoslot-password")
        self._capacity = threads + queue
        self._running: dict[tuple[str, bytes], asyncio.Future] = {}
        self._wrong_seconds = wrong_seconds

    @property
    def busy(self) -> int:
        """Checks running or waiting for a thread."""
        return len(self._running)

    def _tag(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()

    async def verify(self, password: str, record: dict | None) -> bool:
        if not record:
            return False
        key = (record["hash"], self._tag(password))
        if key in self._ok:  # dict lookup on an HMAC: no timing signal about the password itself
            return True
        running = self._running.get(key)
        if running is None:
            if len(self._running) >= self._capacity:
                raise CheckerBusy()
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._executor, _slow_when_wrong, password, record, self._wrong_seconds)
            self._running[key] = running
            running.add_done_callback(lambda _f: self._running.pop(key, None))
        # shielded: a booth hanging up must not cancel a check other shots are waiting on
        ok = await asyncio.shield(running)
        if ok:
            if len(self._ok) >= self._max:
                self._ok.pop(next(iter(self._ok)))
            self._ok[key] = None
        return ok

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
