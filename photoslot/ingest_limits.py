"""What the ingest allows a client before its password is proven: the guess throttle, the stranger
gate and the buffer budget. Rules in process memory — no I/O, the time is passed in.

**PasswordThrottle.** Failures are counted per client address (an IPv6 client by its /64, the
block one host usually holds): a wrong password, a form without one, and — for an address that
never proved the password — a 503 `server_busy` (it came while the checker or the buffer budget
was full, i.e. faster than it could be answered). After `ingest.password_max_failures` of them
the address must wait `ingest.password_backoff_seconds` after its newest failure, doubling with
each further failure up to `ingest.password_max_backoff_seconds`; a waiting address is answered
429 before anything is read, queried or hashed. Failures are forgotten `ingest.password_window_seconds` after
the newest one, or at once when the address sends the right password. Only failing addresses are
remembered, so a booth that sends the right password is never in the table and never waits.

The table holds at most `MAX_ADDRESSES` entries: past that, the address whose newest failure is
oldest is dropped first. Rotating addresses can therefore escape the back-off — what bounds
their cost is the password checker's bounded queue (passwords.py) and the stranger gate below,
not this table.

**Proven addresses and the stranger gate.** An address that sent the right password is
remembered (the last `MAX_ADDRESSES` of them; only the password gets an address in). Before
the password is read an ingest already needs the database (the slot, the live settings, the
queue), and a flood of requests from unproven addresses would hold the whole connection pool,
making the booth's own queries wait in line. So at most `STRANGERS_IN_DATABASE` ingests from
unproven addresses may be in that stage at once, `STRANGERS_WAITING` more wait in line for a
place, and beyond that they are answered 503 at once. A proven address (the booth, after its
first shot) never waits for that gate.

Per process is enough: the ingest is served by the one `serve` process (workers may run
elsewhere, the HTTP door does not), and a restart forgetting the table only gives a guesser a
handful of free tries again.

**BufferBudget.** A file part that arrives before the password is held in memory until the
password is checked (nothing reaches the disk for an unproven client). All such buffers of the
process share one budget (`ingest.file_before_password_buffer_mb`); a part that does not fit is
refused instead of growing the process.
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

from photoslot.auth import backoff_seconds  # the admin sign-in's back-off table, the same rule

MAX_ADDRESSES = 4096       # remembered failing addresses (~200 bytes each), and as many proven ones
STRANGERS_IN_DATABASE = 2  # ingests of unproven addresses in their database stage at once (pool: 10)
STRANGERS_WAITING = 64     # … and waiting for one of those places; more are answered 503 at once
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


KINDS = ("wrong", "refused", "busy")  # what a report counts per address


@dataclass
class GuessReport:
    """Who was refused before proving the password, since the previous report: `wrong` passwords,
    tries `refused` while backing off, and `busy` answers (checker queue or buffer budget full).
    The top addresses by name, everyone else summed (with any address beyond MAX_ADDRESSES)."""
    top: list[tuple[str, dict]]  # (address, {kind: count}), most first
    other_addresses: int
    other: dict


class PasswordThrottle:
    def __init__(self, *, free: int, first: float, cap: float, window: float,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.free, self.first, self.cap, self.window = free, first, cap, window
        self.max_addresses = max_addresses
        self._table: OrderedDict[str, _Failures] = OrderedDict()  # oldest newest-failure first
        self._proven: OrderedDict[str, None] = OrderedDict()      # sent the right password; newest last
        # For the next report, bounded like the table; addresses beyond the bound are summed.
        self._counts: dict[str, dict] = {}
        self._overflow = dict.fromkeys(KINDS, 0)

    @classmethod
    def from_config(cls, cfg) -> "PasswordThrottle":
        return cls(free=int(cfg.get("ingest.password_max_failures")),
                   first=float(cfg.get("ingest.password_backoff_seconds")),
                   cap=float(cfg.get("ingest.password_max_backoff_seconds")),
                   window=float(cfg.get("ingest.password_window_seconds")))

    def __len__(self) -> int:
        return len(self._table)

    def wait(self, key: str, now: float) -> float:
        """Seconds this address must still wait before its password is checked (0 = go ahead).
        A refused try is counted for the report, not as a failure: it cost nothing."""
        entry = self._live(key, now)
        if entry is None:
            return 0.0
        left = entry.newest + backoff_seconds(entry.count, self.free, self.first, self.cap) - now
        if left <= 0:
            return 0.0
        self.note(key, "refused")
        return left

    def failed(self, key: str, now: float, kind: str = "wrong") -> None:
        """A failure of this address: a wrong password, or (`kind` "busy") a refusal for arriving
        when the checker was full — either way a try that did not prove the password."""
        entry = self._live(key, now) or _Failures()
        entry.count += 1
        entry.newest = now
        self._table[key] = entry
        self._table.move_to_end(key)
        while len(self._table) > self.max_addresses:
            self._table.popitem(last=False)
        self.note(key, kind)

    def succeeded(self, key: str) -> None:
        """The right password: the address starts afresh (a fixed booth does not wait) and is proven."""
        self._table.pop(key, None)
        self._proven[key] = None
        self._proven.move_to_end(key)
        if len(self._proven) > self.max_addresses:
            self._proven.popitem(last=False)

    def proven(self, key: str) -> bool:
        """Whether this address has sent the right password (recently enough to be remembered)."""
        return key in self._proven

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
        rows = sorted(self._counts.items(), key=lambda row: (-sum(row[1].values()), row[0]))
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


class StrangerGate:
    """Places for ingests of unproven addresses in their database stage. A stranger waits in a
    short line for a place (a booth's first burst after a restart just queues for milliseconds);
    when the line is full too, `enter` says no at once."""

    def __init__(self, places: int = STRANGERS_IN_DATABASE, line: int = STRANGERS_WAITING) -> None:
        self.places = places
        self.line = line
        self.inside = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def enter(self) -> bool:
        """Take a place (waiting for one if need be); False when the line is full as well."""
        if self.inside < self.places and not self._waiting:
            self.inside += 1
            return True
        if len(self._waiting) >= self.line:
            return False
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn  # `leave` hands its place over: `inside` stays counted for us
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.leave()  # handed a place just as we were cancelled: pass it on
            elif turn in self._waiting:
                self._waiting.remove(turn)
            raise
        return True

    def leave(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.inside = max(0, self.inside - 1)


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
