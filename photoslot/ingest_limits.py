"""What the ingest allows a client before its password is proven, and what an admin's test shots
may cost: the guess throttle, the known clients, the buffer budget, the test-shot limits. Rules in
process memory — no I/O, the time is passed in.

**PasswordThrottle: wrong passwords are slowed, never the right one.** The ingest password is
checked first, always (a keyed hash: microseconds, no database — passwords.py), so a request with
the right password is accepted from any address at any time, whatever that address did before. A
wrong password is answered 401 — after a delay once the address has used its free failures: each
failure of an address (a wrong password, a form without one, a 503 `server_busy` to an address that
never proved the password) counts; past `ingest.password_max_failures` of them the 401 of the
next one waits `ingest.password_backoff_seconds`, doubling with each further failure up to
`ingest.password_max_backoff_seconds` (never past the request's window). Failures are forgotten
`ingest.password_window_seconds` after the newest one, or at once when the address sends the right
password.

Why delay the wrong answers rather than refuse a throttled address before checking: refusing
before checking would refuse the right password too (a booth PC with a second DSLR Remote Pro
profile still holding an old password would lock out the first), and refusing only *after*
checking tells the guesser everything (an instant 429 for a wrong guess, an instant 200 for the
right one: the throttle would stop nothing). A delayed 401 is only an answer after the delay; a
guesser who hangs up early learns nothing it could not learn by waiting — and the delay keeps
counting against the address's connections (connection_guard.py: a connection in its delay is
the first to be shed when the server is full, and one closed by the client holds its place among
the address's `server.max_connections_per_client` until the delay is over). So an address can
have at most that many guesses in the air per delay: with the defaults, after five free ones,
about one guess every two seconds however it times them.

The table holds at most `MAX_ADDRESSES` entries: past that, the address whose newest failure is
oldest is dropped first. Rotating addresses therefore buy free guesses; what makes that hopeless is
the password (80 random bits when photoslot generates it; at least 12 characters when typed).

**KnownClients.** Addresses that sent the right ingest password, or made a request with a valid
admin session (the last `MAX_ADDRESSES` of them). When the server is full, their connections are
admitted and the others' idle and slow ones are shed first (connection_guard.py).

Per process is enough: the ingest is served by the one `serve` process (workers may run
elsewhere, the HTTP door does not), and a restart forgetting the table only gives a guesser a
handful of free tries again.

**BufferBudget.** A file part that arrives before the password is held in memory until the
password is checked (nothing reaches the disk for an unproven client). All such buffers of the
process share one budget (`ingest.file_before_password_buffer_mb`); a part that does not fit is
refused instead of growing the process.

**RehearsalLimits.** An admin's test shot runs the real provider (a paid call): one in flight per
slot, and `ingest.test_shots_per_minute` per admin (a bucket of that many, refilled evenly over a
minute), so a held-down button or a script cannot spend a day's quota in a minute.
"""
from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from photoslot.auth import backoff_seconds  # the admin sign-in's back-off table, the same rule

MAX_ADDRESSES = 4096       # remembered failing addresses (~200 bytes each), and as many known ones
REPORT_TOP = 10            # addresses named in one guessing report; the rest are summed


def client_key(address: str | None) -> str:
    """The throttling key of a client address: the address itself, an IPv6 one cut to its /64."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class _Failures:
    count: int = 0
    newest: float = 0.0        # time of the newest failure, seconds


KINDS = ("wrong", "delayed", "busy")  # what a report counts per address


@dataclass
class GuessReport:
    """Who was refused before proving the password, since the previous report: `wrong` passwords
    (answered 401), of which `delayed` were answered after a back-off delay, and `busy` answers
    (the buffer budget, or an old record's checks, full). The top addresses by name, everyone else
    summed (with any address beyond MAX_ADDRESSES)."""
    top: list[tuple[str, dict]]  # (address, {kind: count}), most first
    other_addresses: int
    other: dict


class KnownClients:
    """Client keys that proved themselves (the right ingest password, a valid admin session): the
    last `limit` of them, newest last."""

    def __init__(self, limit: int = MAX_ADDRESSES) -> None:
        self.limit = limit
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> None:
        if key in self._keys:
            self._keys.move_to_end(key)
            return
        self._keys[key] = None
        if len(self._keys) > self.limit:
            self._keys.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class PasswordThrottle:
    def __init__(self, *, free: int, first: float, cap: float, window: float,
                 max_addresses: int = MAX_ADDRESSES, known: KnownClients | None = None) -> None:
        self.free, self.first, self.cap, self.window = free, first, cap, window
        self.max_addresses = max_addresses
        self.known = known if known is not None else KnownClients(max_addresses)
        self._table: OrderedDict[str, _Failures] = OrderedDict()  # oldest newest-failure first
        # For the next report, bounded like the table; addresses beyond the bound are summed.
        self._counts: dict[str, dict] = {}
        self._overflow = dict.fromkeys(KINDS, 0)

    @classmethod
    def from_config(cls, cfg, known: KnownClients | None = None) -> "PasswordThrottle":
        return cls(free=int(cfg.get("ingest.password_max_failures")),
                   first=float(cfg.get("ingest.password_backoff_seconds")),
                   cap=float(cfg.get("ingest.password_max_backoff_seconds")),
                   window=float(cfg.get("ingest.password_window_seconds")), known=known)

    def __len__(self) -> int:
        return len(self._table)

    def failures(self, key: str, now: float) -> int:
        entry = self._live(key, now)
        return entry.count if entry is not None else 0

    def failed(self, key: str, now: float, kind: str = "wrong") -> float:
        """A failure of this address: a wrong password, or (`kind` "busy") a refusal for arriving
        when the server could not take its photo — either way a try that did not prove the password.
        Returns how long its answer waits (0 for the free ones)."""
        entry = self._live(key, now) or _Failures()
        entry.count += 1
        entry.newest = now
        self._table[key] = entry
        self._table.move_to_end(key)
        while len(self._table) > self.max_addresses:
            self._table.popitem(last=False)
        delay = backoff_seconds(entry.count - 1, self.free, self.first, self.cap)
        self.note(key, kind)
        if delay > 0 and kind == "wrong":
            self.note(key, "delayed")
        return delay

    def succeeded(self, key: str) -> None:
        """The right password: the address starts afresh (a fixed booth does not wait) and is known."""
        self._table.pop(key, None)
        self.known.add(key)

    def proven(self, key: str) -> bool:
        """Whether this address has sent the right password or signed in (recently enough to be remembered)."""
        return key in self.known

    def note(self, key: str, kind: str) -> None:
        """Count one refusal of `kind` for the next report."""
        counts = self._counts.get(key)
        if counts is None:
            if len(self._counts) >= self.max_addresses:
                self._overflow[kind] += 1
                return
            counts = self._counts[key] = dict.fromkeys(KINDS, 0)
        counts[kind] += 1

    def report(self) -> GuessReport | None:
        """Counts since the previous report (None when there were none), then start counting anew."""
        rows = sorted(self._counts.items(), key=lambda row: (-(row[1]["wrong"] + row[1]["busy"]), row[0]))
        overflow = self._overflow
        self._counts, self._overflow = {}, dict.fromkeys(KINDS, 0)
        if not rows and not any(overflow.values()):
            return None
        rest = rows[REPORT_TOP:]
        other = {kind: overflow[kind] + sum(counts[kind] for _key, counts in rest) for kind in KINDS}
        return GuessReport(top=rows[:REPORT_TOP], other_addresses=len(rest), other=other)

    def _live(self, key: str, now: float) -> _Failures | None:
        entry = self._table.get(key)
        if entry is not None and now - entry.newest > self.window:
            del self._table[key]
            return None
        return entry


class BufferBudget:
    """Bytes of early file parts held in memory by the whole process, under one ceiling."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give_back(self, n: int) -> None:
        self.used = max(0, self.used - n)


class RehearsalRefused(Exception):
    """A test shot refused before it starts: `reason` (`test_shot_running`, `too_many_test_shots`)
    and the seconds to wait."""

    def __init__(self, reason: str, details: str, retry_after: int) -> None:
        super().__init__(details)
        self.reason, self.details, self.retry_after = reason, details, retry_after


class RehearsalLimits:
    """One test shot in flight per slot; `per_minute` per admin (a bucket refilled evenly)."""

    def __init__(self, per_minute: float, max_admins: int = 64) -> None:
        self.per_minute = float(per_minute)
        self.max_admins = max_admins
        self.running: set[str] = set()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # admin -> (tokens, at)

    def begin(self, slot_id: str, admin: str, now: float) -> None:
        """Take the slot and one of the admin's shots, or RehearsalRefused (nothing taken)."""
        if slot_id in self.running:
            raise RehearsalRefused("test_shot_running", f"a test shot of {slot_id} is still running; wait for its "
                                  "answer", 1)
        tokens, at = self._buckets.get(admin, (self.per_minute, now))
        tokens = min(self.per_minute, tokens + (now - at) * self.per_minute / 60.0)
        if tokens < 1.0:
            wait = max(1, math.ceil((1.0 - tokens) * 60.0 / self.per_minute))
            raise RehearsalRefused("too_many_test_shots",
                                  f"at most {self.per_minute:g} test shots a minute per admin; retry in {wait} s", wait)
        self._buckets[admin] = (tokens - 1.0, now)
        self._buckets.move_to_end(admin)
        while len(self._buckets) > self.max_admins:
            self._buckets.popitem(last=False)
        self.running.add(slot_id)

    def end(self, slot_id: str) -> None:
        self.running.discard(slot_id)
