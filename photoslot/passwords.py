"""Salted scrypt hashes for the ingest password and the admin accounts.

The ingest password is checked on every shot, so a successful check is remembered in-process as
an HMAC under a random per-process key: the next check with the same password costs microseconds,
while a wrong password always pays the full scrypt price (~50-70 ms of CPU).

Those scrypt runs happen on a small executor of their own (`CHECK_THREADS` threads), never on
the default one the image work uses; at most `CHECK_QUEUE` more may wait for it, beyond that a
check is refused at once (`CheckerBusy`) instead of queueing CPU. Checks for clients that have
not proven the password yet (strangers) go one at a time through a lane that stays closed for
`STRANGER_WRONG_SECONDS` after each wrong password: however many clients guess, guessing buys
one scrypt a second. A client that has proven the password (the booth, after a password change)
skips the lane; a password already known to be right needs no thread at all. The same password
checked by several shots at once runs scrypt once.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
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


CHECK_THREADS = 1   # password checks running at once, whatever the guessing rate
CHECK_QUEUE = 4     # checks allowed to wait (for the thread, or in the strangers' lane); more are refused at once
STRANGER_WRONG_SECONDS = 1.0  # the strangers' lane stays closed this long after a wrong password


class CheckerBusy(Exception):
    """Every password-check thread is busy and the queue is full: answer "busy", do not wait."""


class CachedVerifier:
    def __init__(self, max_entries: int = 64, *, threads: int = CHECK_THREADS, queue: int = CHECK_QUEUE,
                 wrong_seconds: float = STRANGER_WRONG_SECONDS) -> None:
        self._key = os.urandom(32)
        self._ok: dict[tuple[str, bytes], None] = {}
        self._max = max_entries
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=threads,
                                                               thread_name_prefix="photoslot-password")
        self._capacity = threads + queue
        self._queue = queue
        self._running: dict[tuple[str, bytes], asyncio.Future] = {}
        self._wrong_seconds = wrong_seconds
        self._lane = asyncio.Lock()   # strangers' checks, one at a time, in arrival order
        self._lane_waiting = 0
        self._lane_keys: collections.Counter = collections.Counter()  # passwords in the lane or its line
        self._lane_opens_at = 0.0     # loop time: the lane is closed until then after a wrong password

    @property
    def busy(self) -> int:
        """Checks running or waiting for a thread."""
        return len(self._running)

    def _tag(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()

    async def verify(self, password: str, record: dict | None, *, proven: bool = False) -> bool:
        """Whether `password` matches `record`. `proven`: the client has sent the right password
        before (it skips the strangers' lane). CheckerBusy when the check would have to queue."""
        if not record:
            return False
        key = (record["hash"], self._tag(password))
        if key in self._ok:  # dict lookup on an HMAC: no timing signal about the password itself
            return True
        if proven:
            ok = await self._check(key, password, record)
        else:
            ok = await self._through_the_lane(key, password, record)
        if ok:
            if len(self._ok) >= self._max:
                self._ok.pop(next(iter(self._ok)))
            self._ok[key] = None
        return ok

    async def _through_the_lane(self, key, password: str, record: dict) -> bool:
        # The same password already in the lane (several booths' first shots at once) does not
        # count against the line: its turn finds it known (no scrypt) or joins its running check.
        if self._lane_waiting >= self._queue and not self._lane_keys[key]:
            raise CheckerBusy()
        loop = asyncio.get_running_loop()
        self._lane_keys[key] += 1
        try:
            self._lane_waiting += 1
            try:
                await self._lane.acquire()
            finally:
                self._lane_waiting -= 1
            try:
                if key in self._ok:
                    return True
                if self._lane_opens_at > loop.time():
                    await asyncio.sleep(self._lane_opens_at - loop.time())
                ok = await self._check(key, password, record)
                if not ok:  # the guesser has its answer at once; the next stranger waits
                    self._lane_opens_at = loop.time() + self._wrong_seconds
                return ok
            finally:
                self._lane.release()
        finally:
            self._lane_keys[key] -= 1
            if not self._lane_keys[key]:
                del self._lane_keys[key]

    async def _check(self, key, password: str, record: dict) -> bool:
        """scrypt on the checker's thread; one run for the same password checked at once."""
        running = self._running.get(key)
        if running is None:
            if len(self._running) >= self._capacity:
                raise CheckerBusy()
            loop = asyncio.get_running_loop()
            running = loop.run_in_executor(self._executor, verify_password, password, record)
            self._running[key] = running
            running.add_done_callback(lambda _f: self._running.pop(key, None))
        # shielded: a booth hanging up must not cancel a check other shots are waiting on
        return await asyncio.shield(running)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
