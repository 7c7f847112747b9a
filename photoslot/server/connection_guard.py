"""Connections that cannot pin the server: deadlines for every phase of a connection, connection
caps with priorities, and bounded logging of malformed requests — in front of aiohttp.

aiohttp waits for a request head and a body as long as the client keeps sending (a byte now and
then is enough), and takes every connection the operating system hands it. Here every accepted
connection goes through a small asyncio protocol that wraps aiohttp's own and follows the
connection through its phases (the app's `track_phases` middleware says when a request starts and
ends):

- **head** — from the connection's start, and again after each answer on a kept-alive connection:
  the next request head must be complete within `server.header_timeout_seconds` (10 s), or the
  connection is closed. A head trickled byte by byte, or a second head that never ends, is closed
  like a silent connection.
- **body** — from the head's end until the body is complete: the client must send at least
  `server.body_min_bytes_per_second` (8 KiB/s) over every `server.body_rate_window_seconds` (5 s)
  while the server is reading, and the whole body within `server.body_timeout_seconds` (60 s; never less than the
  ingest window's upper bound); otherwise the connection is closed. The ingest also answers 504 at
  its window. A window in which the server itself stopped reading (its handler busy) does not
  count against the client.
- **handler** — the body is in: the server works on the request; its handler bounds itself (the
  ingest's window).
- **penalty** — a wrong ingest password whose 401 is being delayed (ingest_limits.py).

**Caps, by priority.** At most `server.max_connections_per_client` open connections from one
client address (an IPv6 client by its /64; a peer listed in `server.trusted_proxies` relays many
clients, so it only counts toward the total), and `server.max_connections` in all, of which
strangers (addresses that have neither sent the right ingest password nor used an admin session
— ingest_limits.KnownClients) may hold all but a tenth. When a newcomer finds no room, a
connection is shed to make it: first a stranger's idle one (waiting for a head, or in a penalty
delay), oldest first; then a stranger's body, the one that sent nothing for longest first; and,
for a known newcomer, a known client's idle connection. A stranger never sheds a known client's
connection; only when nothing can be shed is the newcomer refused, `503 too_many_connections` in
the ingest's JSON shape, and closed (aiohttp never sees it). A connection in its penalty delay
that the client closes keeps its place among its address's connections until the delay is over:
hanging up on a delayed 401 buys a guesser nothing. The total is lowered at start to what the
open-file limit allows (`fd_ceiling`): past it, `accept()` itself fails and nobody gets an answer.

**Malformed requests** (a control byte in a header, a broken request line: refused by aiohttp's
parser before any handler) are answered 400 with the product's headers and JSON, and logged as one
line per address per `MALFORMED_REPORT_SECONDS` with a count — never a traceback, never the bytes.

**accept() errors** — asyncio reports "socket.accept() out of system resource" through the loop's
exception handler, up to a hundred times per listening-socket wake-up (it keeps trying the
backlog); `limit_accept_error_logs` lets one line per second through, with a count.

Connections during a TLS handshake are not counted (the wrapper sees a connection once it is
established); asyncio closes a handshake that does not finish within 60 s.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import OrderedDict

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

try:
    import resource  # POSIX only
except ImportError:  # Windows
    resource = None

from photoslot import client_address, ingest_limits
from photoslot.logs import event
from photoslot.server.ingest_answers import error_body
from photoslot.server.keys import CONNECTIONS
from photoslot.server.security import SECURITY_HEADERS, SERVER_NAME

log = logging.getLogger("photoslot.connections")

# Descriptors kept out of the cap, each for a reason the cap cannot see:
# - FD_OWN: the database pool, photos being written, provider calls, logs;
# - MAX_LINGERING (below): refused connections reading and dropping their request for a second;
# - accepts in flight: asyncio accepts up to the listen backlog (aiohttp's 128) per wake-up of the
#   listening socket, and a connection reaches the guard two loop iterations later (the transport
#   is made in a task, `connection_made` is scheduled by it); one shed or refused gives its
#   descriptor back one iteration after that. Under a flood a new burst is accepted every
#   iteration, so three bursts can be open before the first is settled (the hostile drill's
#   1,000 connections at once found the single burst once reserved too few: EMFILE in accept).
#   Windows' select() counts a socket only while its transport watches it — one burst.
FD_OWN = 128
ACCEPT_BURST = 128
ACCEPT_BURSTS_IN_FLIGHT = 3
WINDOWS_SELECT_LIMIT = 512   # sockets Python's select() handles on Windows (the selector loop aiopg needs)
LINGER_SECONDS = 1.0         # a refused connection's request is read and dropped this long, then closed
MAX_LINGERING = 64           # beyond this many lingering refusals, close right after the answer
FD_RESERVE = FD_OWN + MAX_LINGERING + ACCEPT_BURSTS_IN_FLIGHT * ACCEPT_BURST    # 576
WINDOWS_RESERVE = FD_OWN + MAX_LINGERING + ACCEPT_BURST                           # 320
RETRY_AFTER = 1
KNOWN_SHARE = 10             # 1/KNOWN_SHARE of the total is kept for known clients
MALFORMED_REPORT_SECONDS = 60.0
MALFORMED_ADDRESSES = 1024   # addresses counted by name between two reports; the rest are summed

HEAD, BODY, HANDLER, PENALTY = "head", "body", "handler", "penalty"
# At a stop aiohttp waits this long for a request still being handled (then cancels it, and waits
# as long again) — its default is 60 s. serve has already given its shots the grace and their
# answers by then (runtime.py); what is left is an admin page or a download, and the stop is bounded.
SHUTDOWN_TIMEOUT = 1.0



def fd_ceiling(configured: int, fd_limit: int | None, *, reserve: int | None = None) -> int:
    """The connection cap that fits `fd_limit` open files (None = no limit) with `reserve`
    (this platform's: `fd_reserve()`) to spare."""
    if fd_limit is None:
        return configured
    reserve = fd_reserve() if reserve is None else reserve
    return max(1, min(configured, fd_limit - reserve))


def fd_reserve() -> int:
    return WINDOWS_RESERVE if sys.platform == "win32" or resource is None else FD_RESERVE


def open_file_limit() -> int | None:
    """This process's limit on open descriptors that the event loop can serve."""
    if sys.platform == "win32" or resource is None:
        return WINDOWS_SELECT_LIMIT
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


class _Entry:
    __slots__ = ("key", "relay", "known", "phase")

    def __init__(self, key: str, relay: bool, known: bool) -> None:
        self.key, self.relay, self.known, self.phase = key, relay, known, HEAD


class ConnectionTable:
    """Open connections in all and per client key, each in its phase, and which one to shed when a
    newcomer finds no room (see the module doc). A connection is any hashable token (the guard uses
    its protocol object). Pure bookkeeping: no I/O, the time is passed in."""

    def __init__(self, total: int, per_client: int, *, reserve: int | None = None) -> None:
        self.total_limit = total
        self.per_client_limit = per_client
        self.reserve = total // KNOWN_SHARE if reserve is None else reserve
        self._by_client: dict[str, int] = {}
        self._open: dict[object, _Entry] = {}
        self._strangers = 0
        self._idle: OrderedDict[object, None] = OrderedDict()        # strangers: head or penalty, oldest first
        self._bodies: OrderedDict[object, None] = OrderedDict()      # strangers' bodies, longest silent first
        self._known_idle: OrderedDict[object, None] = OrderedDict()  # known clients: head or penalty
        self._holds: dict[str, list[float]] = {}                     # key -> ends of penalty holds

    @property
    def total(self) -> int:
        return len(self._open)

    @property
    def strangers(self) -> int:
        return self._strangers

    @property
    def waiting(self) -> int:
        """Open connections waiting for a request head (or in a penalty delay): the ones shed first."""
        return len(self._idle) + len(self._known_idle)

    @property
    def by_client(self) -> dict[str, int]:
        """Open connections (and penalty holds) per client key."""
        out = dict(self._by_client)
        for key, ends in self._holds.items():
            out[key] = out.get(key, 0) + len(ends)
        return out

    def phase(self, conn) -> str | None:
        entry = self._open.get(conn)
        return entry.phase if entry is not None else None

    def is_known(self, conn) -> bool:
        entry = self._open.get(conn)
        return entry is not None and (entry.known or entry.relay)

    def open(self, conn, key: str, *, relay: bool = False, known: bool = False,
             now: float = 0.0) -> tuple[str | None, object | None]:
        """Admit `conn`: (None, a connection shed to make room, or None); or refuse it:
        ("client" | "total", None), nothing counted. A relay (trusted proxy) counts toward the total
        only, and is treated like a known client."""
        if not relay and self._count(key, now) >= self.per_client_limit:
            return "client", None
        stranger = not (known or relay)
        shed = None
        if len(self._open) >= self.total_limit or (stranger and self._strangers >= self.total_limit - self.reserve):
            shed = self._victim(for_known=not stranger)
            if shed is None:
                return "total", None
            self.close(shed)
        if not relay:
            self._by_client[key] = self._by_client.get(key, 0) + 1
        entry = self._open[conn] = _Entry(key, relay, known)
        if stranger:
            self._strangers += 1
        self._file(conn, entry)
        return None, shed

    def connections(self) -> list:
        return list(self._open)

    def set_phase(self, conn, phase: str) -> None:
        entry = self._open.get(conn)
        if entry is None or entry.phase == phase:
            return
        self._unfile(conn)
        entry.phase = phase
        self._file(conn, entry)

    def active(self, conn) -> None:
        """Bytes of a body arrived: this body is the last a newcomer sheds."""
        if conn in self._bodies:
            self._bodies.move_to_end(conn)

    def mark_known(self, conn) -> None:
        entry = self._open.get(conn)
        if entry is None or entry.known or entry.relay:
            return
        self._unfile(conn)
        entry.known = True
        self._strangers -= 1
        self._file(conn, entry)

    def close(self, conn, *, hold_until: float | None = None, now: float = 0.0) -> None:
        """Forget `conn` (again: nothing happens). `hold_until`: its place among its address's
        connections stays taken until then (a penalty delay the client hung up on)."""
        entry = self._open.pop(conn, None)
        if entry is None:
            return
        self._unfile(conn)
        if not (entry.known or entry.relay):
            self._strangers -= 1
        if entry.relay:
            return
        left = self._by_client[entry.key] - 1
        if left:
            self._by_client[entry.key] = left
        else:
            del self._by_client[entry.key]  # the table never outgrows the open connections
        if hold_until is not None and hold_until > now:
            self._holds.setdefault(entry.key, []).append(hold_until)

    def _count(self, key: str, now: float) -> int:
        ends = self._holds.get(key)
        if ends is not None:
            ends[:] = [end for end in ends if end > now]
            if not ends:
                del self._holds[key]
        if len(self._holds) > 4 * ingest_limits.MAX_ADDRESSES:  # rotating addresses: drop what expired
            for k in [k for k, e in self._holds.items() if max(e) <= now]:
                del self._holds[k]
        return self._by_client.get(key, 0) + len(self._holds.get(key, ()))

    def _file(self, conn, entry: _Entry) -> None:
        idle = entry.phase in (HEAD, PENALTY)
        if entry.known or entry.relay:
            if idle:
                self._known_idle[conn] = None
        elif idle:
            self._idle[conn] = None
        elif entry.phase == BODY:
            self._bodies[conn] = None

    def _unfile(self, conn) -> None:
        self._idle.pop(conn, None)
        self._bodies.pop(conn, None)
        self._known_idle.pop(conn, None)

    def _victim(self, *, for_known: bool):
        for pool in ((self._idle, self._bodies, self._known_idle) if for_known else (self._idle, self._bodies)):
            if pool:
                return next(iter(pool))
        return None


class OncePer:
    """Let one event through per `seconds`; count the ones held back in between."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = float("-inf")
        self.held_back = 0

    def allow(self, now: float) -> bool:
        if now - self._last < self.seconds:
            self.held_back += 1
            return False
        self._last = now
        return True

    def take_held_back(self) -> int:
        n, self.held_back = self.held_back, 0
        return n


class PerAddressReport:
    """Events counted per address: the first of an address is logged at once, the rest summed into
    one line per address when the interval ends (beyond `max_addresses` names, under "others")."""

    def __init__(self, name: str, seconds: float = MALFORMED_REPORT_SECONDS,
                 max_addresses: int = MALFORMED_ADDRESSES) -> None:
        self.name, self.seconds, self.max_addresses = name, seconds, max_addresses
        self._held: dict[str, list] = {}  # address -> [count, last fields]
        self._timer: asyncio.TimerHandle | None = None
        self.lines = 0

    def add(self, address: str, **fields) -> None:
        held = self._held.get(address)
        if held is None:
            if len(self._held) >= self.max_addresses:
                address = "others"
                held = self._held.get(address)
        if held is None:
            self._held[address] = [0, fields]
            self._emit(address, 1, fields)
        else:
            held[0] += 1
            held[1] = fields
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self.flush)

    def flush(self) -> None:
        self._timer = None
        held, self._held = self._held, {}
        for address, (count, fields) in held.items():
            if count:
                self._emit(address, count, fields)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self.flush()

    def _emit(self, address: str, count: int, fields: dict) -> None:
        self.lines += 1
        event(log, self.name, logging.WARNING, client=address, count=count, per_seconds=int(self.seconds), **fields)


def _refusal(reason: str) -> bytes:
    details = ("too many connections from this address; close some or retry" if reason == "client"
               else "the server has too many open connections; retry shortly")
    body = json.dumps(error_body("too_many_connections", details, retry_after=RETRY_AFTER)).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in SECURITY_HEADERS.items())
            + f"Server: {SERVER_NAME}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


REFUSALS = {reason: _refusal(reason) for reason in ("client", "total")}
MALFORMED_DETAILS = "malformed HTTP request"


class QuietRequestHandler(RequestHandler):
    """aiohttp's protocol, except for its own error answers: a request its parser refuses (status
    below 500) gets our headers and JSON — both error shapes' fields, since the path is unknown —
    and is counted in one line per address, never logged with a traceback or its bytes. A crash
    (500) keeps aiohttp's log line with the traceback: that one is a bug to fix."""

    photoslot_guard: "ConnectionGuard | None" = None

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            resp = super().handle_error(request, status, exc, message)
        else:
            guard = self.photoslot_guard
            if guard is not None:
                guard.malformed.add(ingest_limits.client_key(request.remote), status=status,
                                    error=exc.__class__.__name__ if exc is not None else None)
            body = error_body("invalid_request", MALFORMED_DETAILS)
            body["error"] = {"code": "bad_request", "message": MALFORMED_DETAILS, "details": {}}
            resp = web.Response(status=status, text=json.dumps(body), content_type="application/json")
            resp.force_close()
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        resp.headers["Server"] = SERVER_NAME
        return resp


class _Guarded(asyncio.Protocol):
    """One accepted connection: counted, timed through its phases, or refused."""

    def __init__(self, guard: "ConnectionGuard") -> None:
        self.guard = guard
        self.inner: RequestHandler | None = None  # aiohttp's protocol, once admitted
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.payload = None            # the body being received (phase BODY)
        self.body_deadline = 0.0
        self.window_bytes = 0          # body bytes since the window started
        self.penalty_until: float | None = None

    # ---- asyncio protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, (tuple, list)) and peer else None
        guard = self.guard
        key = ingest_limits.client_key(host)
        loop = asyncio.get_running_loop()
        refused, shed = guard.table.open(self, key, relay=guard.is_relay(host), known=key in guard.known,
                                         now=loop.time())
        if refused is not None:
            guard.refuse(transport, refused)
            return
        if shed is not None:
            guard.evicted += 1
            shed.hang_up(closed=True)
        self.inner = guard.make_handler()
        guard.by_protocol[self.inner] = self
        self._await_head(loop)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        inner = self.inner
        if inner is None:
            return  # a refused connection: its request is dropped
        inner.data_received(data)
        if self.payload is not None:
            self.window_bytes += len(data)
            self.guard.table.active(self)
            if self.payload.is_eof():
                self._body_done()

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc) -> None:
        self._cancel_timer()
        loop_time = asyncio.get_running_loop().time()
        self.guard.table.close(self, hold_until=self.penalty_until, now=loop_time)
        if self.inner is not None:
            self.guard.by_protocol.pop(self.inner, None)
            self.inner.connection_lost(exc)

    # ---- phases

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _await_head(self, loop) -> None:
        self.payload = None
        self._cancel_timer()
        self.guard.table.set_phase(self, HEAD)
        self.timer = loop.call_later(self.guard.header_timeout, self._head_timeout)

    def _head_timeout(self) -> None:
        self.timer = None
        self.guard.head_timeouts += 1
        self.hang_up()

    def request_started(self, request: web.BaseRequest) -> None:
        """The app's middleware saw this connection's request: its head is in."""
        if self.transport is None or self.guard.table.phase(self) is None:
            return
        self._cancel_timer()
        payload = request.content
        if request.body_exists and not payload.is_eof():
            loop = asyncio.get_running_loop()
            self.payload = payload
            self.body_deadline = loop.time() + self.guard.body_timeout
            self.window_bytes = 0
            self.guard.table.set_phase(self, BODY)
            self.timer = loop.call_later(min(self.guard.rate_window, self.guard.body_timeout), self._rate_check)
        else:
            self.guard.table.set_phase(self, HANDLER)

    def _body_done(self) -> None:
        self.payload = None
        self._cancel_timer()
        if self.guard.table.phase(self) == BODY:
            self.guard.table.set_phase(self, HANDLER)

    def _rate_check(self) -> None:
        self.timer = None
        payload = self.payload
        if payload is None:
            return
        if payload.is_eof():
            self._body_done()
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self.body_deadline:
            self.guard.body_timeouts += 1
            self.hang_up()
            return
        reading = getattr(self.transport, "is_reading", lambda: True)()
        if reading and self.window_bytes < self.guard.min_body_rate * self.guard.rate_window:
            self.guard.slow_bodies += 1
            self.hang_up()
            return
        self.window_bytes = 0
        self.timer = loop.call_later(min(self.guard.rate_window, max(0.01, self.body_deadline - loop.time())),
                                     self._rate_check)

    def request_done(self) -> None:
        """The request's answer is written: on a kept-alive connection, the next head is awaited.
        A penalty's end stays: a connection closed after a delayed 401 still holds its place."""
        if self.transport is None or self.transport.is_closing() or self.guard.table.phase(self) is None:
            return
        self._await_head(asyncio.get_running_loop())

    def penalize(self, until: float) -> None:
        """A delayed wrong-password answer until loop time `until`: shed first, and held after a hang-up."""
        self.penalty_until = until
        self.guard.table.set_phase(self, PENALTY)

    def pardon(self) -> None:
        """The password was right after all (changed a moment ago): the penalty is lifted."""
        self.penalty_until = None
        if self.guard.table.phase(self) == PENALTY:
            self.guard.table.set_phase(self, BODY if self.payload is not None else HANDLER)

    def proven(self) -> None:
        self.guard.table.mark_known(self)

    def hang_up(self, *, closed: bool = False) -> None:
        """Close this connection (a deadline passed, a slow body, or shed for a newcomer)."""
        self._cancel_timer()
        self.payload = None
        if closed:  # already taken out of the table by the newcomer
            self.penalty_until = None
        else:
            self.guard.table.close(self, hold_until=self.penalty_until, now=asyncio.get_running_loop().time())
        self.penalty_until = None
        if self.transport is not None:
            let_go(self.transport)


def let_go(transport) -> None:
    """Close a connection we are done with so that its descriptor is free at once: a close waits
    for the unsent part of an answer, and a client that stopped reading would keep the descriptor
    (uncounted, as it has left the table) for as long as it likes; so what is still unsent is
    dropped. Only connections past a deadline, shed or refused come here: the answers of the
    others are written in full."""
    if transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()


class ConnectionGuard:
    """The protocol factory asyncio's server calls for each accepted connection; everything else
    (shutdown, the connection list) is aiohttp's `Server`, which it wraps."""

    def __init__(self, server: web.Server, *, header_timeout: float, max_connections: int,
                 max_per_client: int, is_relay=lambda host: False, body_timeout: float = 60.0,
                 min_body_rate: float = 8192.0, rate_window: float = 5.0,
                 known: ingest_limits.KnownClients | None = None, reserve: int | None = None) -> None:
        self.server = server
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.min_body_rate = min_body_rate
        self.rate_window = rate_window
        self.table = ConnectionTable(max_connections, max_per_client, reserve=reserve)
        self.is_relay = is_relay
        self.known = known if known is not None else ingest_limits.KnownClients()
        self.by_protocol: dict[RequestHandler, _Guarded] = {}
        self.malformed = PerAddressReport("malformed_requests")
        self.lingering = 0
        self.head_timeouts = 0
        self.body_timeouts = 0
        self.slow_bodies = 0
        self.evicted = 0
        self.refused = {"client": 0, "total": 0}

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def __getattr__(self, name):
        return getattr(self.server, name)

    def make_handler(self) -> RequestHandler:
        """aiohttp's protocol for one connection, as its Server makes it, with our error answers."""
        try:
            handler = QuietRequestHandler(self.server, loop=self.server._loop, **self.server._kwargs)
        except (AttributeError, TypeError):  # an aiohttp whose Server differs: its own protocol
            return self.server()
        handler.photoslot_guard = self
        return handler

    def connection_of(self, request: web.BaseRequest) -> _Guarded | None:
        return self.by_protocol.get(request.protocol)

    def close_all(self) -> int:
        """The end of a stop: close every connection still open (one that never finished its request,
        one whose answer is still being written — it is sent first); returns how many there were."""
        closed = 0
        for conn in self.table.connections():
            transport = conn.transport
            if transport is not None and not transport.is_closing():
                transport.close()
                closed += 1
            self.table.close(conn)
        return closed

    def refuse(self, transport, reason: str) -> None:
        """503 in the ingest's JSON, then close — after reading and dropping the request a moment,
        so the client sees the answer rather than a reset."""
        self.refused[reason] += 1
        transport.write(REFUSALS[reason])
        if self.lingering >= MAX_LINGERING or not transport.can_write_eof():
            let_go(transport)
            return
        transport.write_eof()
        self.lingering += 1

        def done() -> None:
            self.lingering -= 1
            let_go(transport)

        asyncio.get_running_loop().call_later(LINGER_SECONDS, done)


class Connections:
    """What the app knows of the connection guard in front of it (app[CONNECTIONS]): the known
    clients (the ingest and the admin sessions add to them) and, once serving, the guard."""

    def __init__(self, known: ingest_limits.KnownClients | None = None) -> None:
        self.known = known if known is not None else ingest_limits.KnownClients()
        self.guard: ConnectionGuard | None = None

    def of(self, request: web.BaseRequest) -> _Guarded | None:
        return self.guard.connection_of(request) if self.guard is not None else None

    def prove(self, request: web.BaseRequest, key: str) -> None:
        """`request` came with the right ingest password or a valid admin session."""
        self.known.add(key)
        conn = self.of(request)
        if conn is not None:
            conn.proven()

    def penalize(self, request: web.BaseRequest, until: float) -> None:
        conn = self.of(request)
        if conn is not None:
            conn.penalize(until)

    def pardon(self, request: web.BaseRequest) -> None:
        conn = self.of(request)
        if conn is not None:
            conn.pardon()


@web.middleware
async def track_phases(request: web.Request, handler):
    """Outermost middleware: tells the guard when a request's head is in and when its answer is out."""
    conn = request.app[CONNECTIONS].of(request)
    if conn is None:
        return await handler(request)
    conn.request_started(request)
    task = asyncio.current_task()
    if task is not None:  # the task also writes the answer: when it ends, the connection is idle
        task.add_done_callback(lambda _t: conn.request_done())
    return await handler(request)


class GuardedRunner(web.AppRunner):
    """aiohttp's AppRunner whose server comes wrapped in a ConnectionGuard."""

    def __init__(self, app: web.Application, *, guard_options: dict, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self._guard_options = guard_options
        self.guard: ConnectionGuard | None = None

    async def _make_server(self):
        connections = self.app.get(CONNECTIONS)
        known = connections.known if connections is not None else None
        self.guard = ConnectionGuard(await super()._make_server(), known=known, **self._guard_options)
        if connections is not None:
            connections.guard = self.guard
        return self.guard

    async def _cleanup_server(self) -> None:
        if self.guard is not None:
            self.guard.malformed.close()
        await super()._cleanup_server()


def make_runner(app: web.Application, cfg) -> GuardedRunner:
    """The runner `serve` (and the tests' studio) serve the app with: the caps and deadlines from
    the config, the total fitted to the open-file limit, and no decompression of request bodies
    (a compressed body is refused 415 before a byte of it is inflated: server/security.py)."""
    header_timeout = float(cfg.get("server.header_timeout_seconds"))
    configured = int(cfg.get("server.max_connections"))
    fd_limit = open_file_limit()
    total = fd_ceiling(configured, fd_limit)
    if total < configured:
        event(log, "max_connections_lowered", logging.WARNING, configured=configured, used=total,
              open_file_limit=fd_limit, hint="raise the open-file limit (LimitNOFILE) or lower server.max_connections")
    proxies = client_address.trusted_networks(cfg)
    window_max = float(cfg.get("ingest.sync_response_bounds")[1])
    options = {"header_timeout": header_timeout, "max_connections": total,
               "max_per_client": int(cfg.get("server.max_connections_per_client")),
               "body_timeout": max(float(cfg.get("server.body_timeout_seconds")), window_max + 2),
               "min_body_rate": float(cfg.get("server.body_min_bytes_per_second")),
               "rate_window": float(cfg.get("server.body_rate_window_seconds")),
               "is_relay": lambda host: client_address.listed(host, proxies)}
    # aiohttp's own keep-alive close comes a second after the guard's head deadline: the guard's rules
    # decide, aiohttp's is only the fallback.
    return GuardedRunner(app, guard_options=options, handler_cancellation=True, access_log=None,
                         keepalive_timeout=header_timeout + 1, auto_decompress=False,
                         shutdown_timeout=SHUTDOWN_TIMEOUT)


def limit_accept_error_logs(loop: asyncio.AbstractEventLoop, seconds: float = 1.0) -> None:
    """At most one log line per `seconds` for asyncio's "socket.accept() out of system resource";
    every other loop error goes to the handler that was there before."""
    previous = loop.get_exception_handler()
    gate = OncePer(seconds)

    def handler(loop, context) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            if gate.allow(loop.time()):
                event(log, "accept_failed", logging.ERROR, error=context.get("exception"),
                      held_back=gate.take_held_back(),
                      hint="out of open files: raise LimitNOFILE or lower server.max_connections")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
