"""Passwords: the ingest password's keyed hash and its check on the hot path; the admin accounts'
salted scrypt hashes; passwords made for people to read.

**The ingest password** is checked on every shot and guessed by anyone on the studio network, so
its check must cost nothing a guesser can pile up: it is an HMAC-SHA256 of the password under a
key derived from the data dir's settings key (`secrets.py`, the key that encrypts provider keys),
compared in constant time — microseconds, on the event loop, no thread, no queue, no lane a
stranger can fill in front of the booth. A copy of the database alone therefore tells nothing (the
key lives in the data dir), and the record says which settings key made it (`kid`), so a key
rotation re-keys it without the password being typed again. Beside the hash the password is
stored encrypted with the same key (`sealed`), so a signed-in admin can show it to a new booth
(`settings.reveal_ingest_password`).

A record written by an older photoslot is a salted scrypt hash. It keeps working: it is checked
the old way (on a thread of its own, a few waiting at most) until the right password arrives once,
then the record is replaced by the keyed form, made from the plaintext the booth just sent.

**The admin accounts** keep salted scrypt hashes (`users.py`): their sign-in is rare, throttled in
PostgreSQL, and a slow hash is what protects a stolen `admins.json`.
"""
from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import logging
import os
import secrets
from typing import Awaitable, Callable

from photoslot.logs import event

log = logging.getLogger("photoslot.passwords")

_N, _R, _P = 2**14, 8, 1

KEYED = "hmac-sha256"
LEGACY = "scrypt"
_KEY_LABEL = b"photoslot ingest password v1"


# ---------------------------------------------------------------- scrypt (admin accounts, old records)

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
    """A random password for an admin account (URL-safe text)."""
    return secrets.token_urlsafe(nbytes)


# ---------------------------------------------------------------- passwords people read aloud

# No I, L's lowercase twin, 1, O or 0: a booth operator copies it from a screen or a phone call.
# 24 letters + 8 digits = 32 symbols, 5 bits each.
READABLE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
READABLE_GROUPS = 4
READABLE_GROUP_SIZE = 4


def generate_readable(groups: int = READABLE_GROUPS, size: int = READABLE_GROUP_SIZE) -> str:
    """`K7QM-X9PR-4TNH-W2ZD`: 16 random symbols (80 bits) in groups of four."""
    return "-".join("".join(secrets.choice(READABLE_ALPHABET) for _ in range(size)) for _ in range(groups))


# ---------------------------------------------------------------- the keyed hash

def derive_key(settings_key: bytes) -> tuple[str, bytes]:
    """(kid, HMAC key) derived from one Fernet key of settings.key. The kid names the key in a
    record; it is a hash of the derived key, so it tells nothing about either."""
    raw = base64.urlsafe_b64decode(settings_key)
    key = hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()
    return hashlib.sha256(b"kid:" + key).hexdigest()[:12], key


def keyed_hash(password: str, key: bytes) -> str:
    return hmac.new(key, password.encode("utf-8", errors="surrogatepass"), hashlib.sha256).hexdigest()


def keyed_record(password: str, kid: str, key: bytes, sealed: str) -> dict:
    """The stored ingest password: its keyed hash, and the password encrypted (`sealed`)."""
    return {"algo": KEYED, "kid": kid, "hash": keyed_hash(password, key), "sealed": sealed}


def matches_keyed(password: str, record: dict, keys: dict[str, bytes]) -> bool | None:
    """Whether `password` is the one of a keyed `record`; None when no key of `keys` made it."""
    key = keys.get(record.get("kid", ""))
    if key is None:
        return None
    return hmac.compare_digest(keyed_hash(password, key), str(record.get("hash", "")))


# ---------------------------------------------------------------- the check on the hot path

LEGACY_THREADS = 1   # scrypt runs for an old record at once
LEGACY_QUEUE = 4     # … and waiting; more are refused at once (PasswordBusy)
REFRESH_SECONDS = 1.0      # without notifications, the stored record is looked up again when older than this
NOTIFIED_REFRESH_SECONDS = 60.0  # with them (a change is announced), only as a fallback this often
MISS_SPACING_SECONDS = 0.5  # a wrong password looks the record up again, at most this often in all


class PasswordBusy(Exception):
    """An old (scrypt) record's checks are all in use: answer "busy" rather than queue CPU."""


class IngestPasswordCheck:
    """The ingest's password check, in one process.

    The stored record is copied in memory and looked up again when `generation()` changes (this
    process stored a new one, or another announced it: NOTIFY photoslot_ingest_password), or when
    the copy is older than `refresh_seconds` (REFRESH_SECONDS without notifications,
    NOTIFIED_REFRESH_SECONDS with them, as a fallback) — a booth's shot costs no statement. A password
    that does not match the copy is checked once more against a copy read after it arrived —
    the record may have been changed by another process a moment ago, and the right password
    must never be refused for that; those look-ups are shared by everyone waiting and spaced
    MISS_SPACING_SECONDS apart, so however many wrong guesses arrive they cost at most two small
    queries a second. `load()` returns the record (None: no password set); `keys()` the derived
    keys by kid; `upgrade(password, old_record)` replaces an old scrypt record by the keyed form.
    """

    def __init__(self, load: Callable[[], Awaitable[dict | None]], keys: Callable[[], dict[str, bytes]],
                 upgrade: Callable[[str, dict], Awaitable[None]], generation: Callable[[], object] = lambda: 0,
                 *, refresh_seconds: float = REFRESH_SECONDS, legacy_threads: int = LEGACY_THREADS,
                 legacy_queue: int = LEGACY_QUEUE) -> None:
        self._load, self._keys, self._upgrade, self._generation = load, keys, upgrade, generation
        self.refresh_seconds = refresh_seconds
        self._record: dict | None = None
        self._read_started = float("-inf")   # loop time the copy's look-up started
        self._seen_generation: object = None
        self._reading: asyncio.Future | None = None
        self._reading_started = 0.0
        self._unreadable_reported: set[str] = set()
        self._legacy_executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._legacy_threads, self._legacy_capacity = legacy_threads, legacy_threads + legacy_queue
        self._legacy_running: dict[tuple[str, str], asyncio.Future] = {}
        self._legacy_ok: set[tuple[str, str]] = set()
        self._tag_key = os.urandom(32)

    @property
    def record(self) -> dict | None:
        return self._record

    async def current(self) -> dict | None:
        """The stored record, from the copy unless it is stale. A look-up that fails (the database
        is away) leaves the copy in use; with no copy yet, the failure is the caller's."""
        loop = asyncio.get_running_loop()
        if self._seen_generation != self._generation() or loop.time() - self._read_started > self.refresh_seconds:
            never_read = self._read_started == float("-inf")
            try:
                await self._read_since(loop.time(), spacing=0.0)
            except Exception:
                if never_read:
                    raise
        return self._record

    async def check(self, password: str, *, arrived: float) -> bool:
        """Whether `password` is the ingest password now: `matches` then `matches_since`."""
        return await self.matches(password) or await self.matches_since(password, arrived=arrived)

    async def matches(self, password: str) -> bool:
        """Whether `password` matches the record as this process knows it (read again if stale)."""
        return await self._matches(password, await self.current())

    async def matches_since(self, password: str, *, arrived: float) -> bool:
        """After `matches` said no: whether `password` matches a record read after `arrived` (loop
        time of the request's arrival) — another process may have changed it a moment ago."""
        seen = self._record
        try:
            await self._read_since(arrived, spacing=MISS_SPACING_SECONDS)
        except Exception:  # the database is away: the copy's answer stands
            return False
        if self._record is seen:
            return False
        return await self._matches(password, self._record)

    async def _read_since(self, since: float, *, spacing: float) -> None:
        """Make sure the copy was read by a look-up that started at `since` or later: join the
        running look-up if it did, else start one (not sooner than `spacing` after the previous)."""
        loop = asyncio.get_running_loop()
        while self._read_started < since:
            reading = self._reading
            if reading is not None and not reading.done():
                started = self._reading_started
                await asyncio.shield(reading)  # a done one never gets here: awaiting it would not yield
                if started >= since:
                    return
                continue  # an older look-up: it is over, start ours
            pause = self._read_started + spacing - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            self._reading_started = loop.time()
            reading = self._reading = asyncio.ensure_future(self._read())
            reading.add_done_callback(lambda f: f.cancelled() or f.exception())
            try:
                await asyncio.shield(reading)
            finally:
                if self._reading is reading:
                    self._reading = None

    async def _read(self) -> None:
        started = asyncio.get_running_loop().time()
        generation = self._generation()
        record = await self._load()
        if record != self._record:
            self._record = record
        self._read_started, self._seen_generation = started, generation

    async def _matches(self, password: str, record: dict | None) -> bool:
        if not record:
            return False
        if record.get("algo") == KEYED:
            found = matches_keyed(password, record, self._keys())
            if found is None:
                kid = str(record.get("kid"))
                if kid not in self._unreadable_reported:
                    self._unreadable_reported.add(kid)
                    event(log, "ingest_password_unreadable", logging.ERROR, kid=kid,
                          hint="the ingest password was stored with another settings.key (secrets/); set it again")
                return False
            return found
        if record.get("algo") == LEGACY:
            return await self._legacy(password, record)
        return False

    async def _legacy(self, password: str, record: dict) -> bool:
        """An old scrypt record: one run per password at a time on a thread of its own; right once,
        the record is replaced by the keyed form."""
        tag = (record["hash"], hmac.new(self._tag_key, password.encode("utf-8", "surrogatepass"),
                                        hashlib.sha256).hexdigest())
        if tag in self._legacy_ok:
            return True
        running = self._legacy_running.get(tag)
        if running is None:
            if len(self._legacy_running) >= self._legacy_capacity:
                raise PasswordBusy()
            if self._legacy_executor is None:
                self._legacy_executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._legacy_threads, thread_name_prefix="photoslot-password")
            running = asyncio.get_running_loop().run_in_executor(self._legacy_executor, verify_password, password,
                                                                 record)
            self._legacy_running[tag] = running
            running.add_done_callback(lambda _f: self._legacy_running.pop(tag, None))
        ok = await asyncio.shield(running)  # a booth hanging up must not cancel a check others wait on
        if ok and tag not in self._legacy_ok:
            self._legacy_ok.add(tag)
            try:
                await self._upgrade(password, record)
                self._read_started = float("-inf")  # the next check reads the keyed record
            except Exception as exc:  # the old record still works; the next right password tries again
                self._legacy_ok.discard(tag)
                event(log, "ingest_password_upgrade_failed", logging.WARNING, error=exc.__class__.__name__)
        return ok

    def close(self) -> None:
        if self._legacy_executor is not None:
            self._legacy_executor.shutdown(wait=False, cancel_futures=True)
