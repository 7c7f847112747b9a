"""Connections that cannot pin the server: a header-read timeout and connection caps, in front of aiohttp.

aiohttp waits for a request head as long as its keep-alive timeout allows (older versions: for
ever), and takes every connection the operating system hands it. Here every accepted connection
goes through a small asyncio protocol that wraps aiohttp's own:

- **caps** — at most `server.max_connections_per_client` open connections from one client
  address (an IPv6 client by its /64; a peer listed in `server.trusted_proxies` relays many
  clients, so it only counts toward the total), and `server.max_connections` in all. At the total,
  the oldest connection that has not yet sent its first request head is closed to make room (a
  half-open flood from many addresses cannot lock a booth out); only when every connection is
  busy with a request is the newcomer refused. A refused connection is answered
  `503 too_many_connections` in the ingest's JSON shape, then closed; aiohttp never sees it.
  The total is lowered at start to what the open-file limit allows (`fd_ceiling`): past it,
  `accept()` itself fails and nobody gets an answer.
- **header timeout** — a connection must deliver its first request head (up to the blank line)
  within `server.header_timeout_seconds`, or it is closed. Later requests on a kept-alive
  connection are bounded by aiohttp's keep-alive timeout, which the runner sets to the same
  value: an idle or half-sent connection is closed once it has sent no complete request for that
  long. A request's body is bounded by its handler (the ingest reads under the slot's window).
- **accept() errors** — asyncio reports "socket.accept() out of system resource" through the
  loop's exception handler, up to a hundred times per listening-socket wake-up (it keeps trying
  the backlog); `limit_accept_error_logs` lets one line per second through, with a count.

Connections during a TLS handshake are not counted (the wrapper sees a connection once it is
established); asyncio closes a handshake that does not finish within 60 s.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from collections import OrderedDict

from aiohttp import web

try:
    import resource  # POSIX only
except ImportError:  # Windows
    resource = None

from photoslot import client_address, ingest_limits
from photoslot.logs import event
from photoslot.server.ingest_answers import error_body
from photoslot.server.toolkit import dumps

log = logging.getLogger("photoslot.connections")

FD_RESERVE = 128             # descriptors kept for the database pool, files, provider calls, logs
WINDOWS_SELECT_LIMIT = 512   # sockets Python's select() handles on Windows (the selector loop aiopg needs)
LINGER_SECONDS = 1.0         # a refused connection's request is read and dropped this long, then closed
MAX_LINGERING = 64           # beyond this many lingering refusals, close right after the answer
HEAD_END = b"\r\n\r\n"
RETRY_AFTER = 1
# At a stop aiohttp waits this long for a request still being handled (then cancels it, and waits
# as long again) — its default is 60 s. serve has already given its shots the grace and their
# answers by then (runtime.py); what is left is an admin page or a download, and the stop is bounded.
SHUTDOWN_TIMEOUT = 1.0


def fd_ceiling(configured: int, fd_limit: int | None) -> int:
    """The connection cap that fits `fd_limit` open files (None = no limit) with FD_RESERVE to spare."""
    if fd_limit is None:
        return configured
    return max(1, min(configured, fd_limit - FD_RESERVE))


def open_file_limit() -> int | None:
    """This process's limit on open descriptors that the event loop can serve."""
    if sys.platform == "win32" or resource is None:
        return WINDOWS_SELECT_LIMIT
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


class ConnectionTable:
    """Open connections in all and per client key, and which of them still wait for their first
    request head. A connection is any hashable token (the guard uses its protocol object)."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total_limit = total
        self.per_client_limit = per_client
        self.by_client: dict[str, int] = {}
        self._open: dict[object, tuple[str, bool]] = {}       # conn -> (key, relay)
        self._waiting: OrderedDict[object, None] = OrderedDict()  # no head yet, oldest first

    @property
    def total(self) -> int:
        return len(self._open)

    @property
    def waiting(self) -> int:
        """Open connections that have not sent their first request head yet."""
        return len(self._waiting)

    def open(self, conn, key: str, *, relay: bool = False) -> tuple[str | None, object | None]:
        """Admit `conn`: (None, a connection evicted to make room or None); or refuse it:
        ("client" | "total", None), nothing counted. At the total cap the oldest connection still
        waiting for its first head makes room — it costs its owner a reconnect, while a booth's
        new connection sends its head at once; only when none is waiting is the newcomer refused.
        A relay (trusted proxy) counts toward the total only."""
        if not relay and self.by_client.get(key, 0) >= self.per_client_limit:
            return "client", None
        evicted = None
        if len(self._open) >= self.total_limit:
            if not self._waiting:
                return "total", None
            evicted = next(iter(self._waiting))
            self.close(evicted)
        if not relay:
            self.by_client[key] = self.by_client.get(key, 0) + 1
        self._open[conn] = (key, relay)
        self._waiting[conn] = None
        return None, evicted

    def head_done(self, conn) -> None:
        self._waiting.pop(conn, None)

    def connections(self) -> list:
        return list(self._open)

    def close(self, conn) -> None:
        """Forget `conn` (again: nothing happens)."""
        found = self._open.pop(conn, None)
        self._waiting.pop(conn, None)
        if found is None:
            return
        key, relay = found
        if not relay:
            left = self.by_client[key] - 1
            if left:
                self.by_client[key] = left
            else:
                del self.by_client[key]  # the table never outgrows the open connections


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


def _refusal(reason: str) -> bytes:
    details = ("too many connections from this address; close some or retry" if reason == "client"
               else "the server has too many open connections; retry shortly")
    body = dumps(error_body("too_many_connections", details, retry_after=RETRY_AFTER)).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: {RETRY_AFTER}\r\n"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n")
    return head.encode() + body


REFUSALS = {reason: _refusal(reason) for reason in ("client", "total")}


class _Guarded(asyncio.Protocol):
    """One accepted connection: counted, timed until its first request head, or refused."""

    def __init__(self, guard: "ConnectionGuard") -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None  # aiohttp's RequestHandler, once admitted
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tail = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, (tuple, list)) and peer else None
        table = self.guard.table
        refused, evicted = table.open(self, ingest_limits.client_key(host), relay=self.guard.is_relay(host))
        if refused is not None:
            self.guard.refuse(transport, refused)
            return
        if evicted is not None:
            self.guard.evicted += 1
            evicted.hang_up()
        self.timer = asyncio.get_running_loop().call_later(self.guard.header_timeout, self._head_timeout)
        self.inner = self.guard.server()
        self.inner.connection_made(transport)

    def _head_timeout(self) -> None:
        self.timer = None
        self.guard.head_timeouts += 1
        self.hang_up()

    def hang_up(self) -> None:
        """Close a connection that has not sent its request head (timed out, or evicted)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.table.close(self)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return  # a refused connection: its request is dropped
        if self.timer is not None:
            keep = len(HEAD_END) - 1  # a head end split across two reads starts in the last 3 bytes
            if HEAD_END in self.tail + data[:keep] or HEAD_END in data:
                self.timer.cancel()
                self.timer = None
                self.guard.table.head_done(self)
            else:
                self.tail = (self.tail + data[-keep:])[-keep:]
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.table.close(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)


class ConnectionGuard:
    """The protocol factory asyncio's server calls for each accepted connection; everything else
    (shutdown, the connection list) is aiohttp's `Server`, which it wraps."""

    def __init__(self, server: web.Server, *, header_timeout: float, max_connections: int,
                 max_per_client: int, is_relay=lambda host: False) -> None:
        self.server = server
        self.header_timeout = header_timeout
        self.table = ConnectionTable(max_connections, max_per_client)
        self.is_relay = is_relay
        self.lingering = 0
        self.head_timeouts = 0
        self.evicted = 0
        self.refused = {"client": 0, "total": 0}

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def __getattr__(self, name):
        return getattr(self.server, name)

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
            transport.close()
            return
        transport.write_eof()
        self.lingering += 1

        def done() -> None:
            self.lingering -= 1
            transport.close()

        asyncio.get_running_loop().call_later(LINGER_SECONDS, done)


class GuardedRunner(web.AppRunner):
    """aiohttp's AppRunner whose server comes wrapped in a ConnectionGuard."""

    def __init__(self, app: web.Application, *, guard_options: dict, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self._guard_options = guard_options
        self.guard: ConnectionGuard | None = None

    async def _make_server(self):
        self.guard = ConnectionGuard(await super()._make_server(), **self._guard_options)
        return self.guard


def make_runner(app: web.Application, cfg) -> GuardedRunner:
    """The runner `serve` (and the tests' studio) serve the app with: the caps from the config,
    the total fitted to the open-file limit."""
    header_timeout = float(cfg.get("server.header_timeout_seconds"))
    configured = int(cfg.get("server.max_connections"))
    fd_limit = open_file_limit()
    total = fd_ceiling(configured, fd_limit)
    if total < configured:
        event(log, "max_connections_lowered", logging.WARNING, configured=configured, used=total,
              open_file_limit=fd_limit, hint="raise the open-file limit (LimitNOFILE) or lower server.max_connections")
    proxies = client_address.trusted_networks(cfg)
    options = {"header_timeout": header_timeout, "max_connections": total,
               "max_per_client": int(cfg.get("server.max_connections_per_client")),
               "is_relay": lambda host: client_address.listed(host, proxies)}
    return GuardedRunner(app, guard_options=options, handler_cancellation=True, access_log=None,
                         keepalive_timeout=header_timeout, shutdown_timeout=SHUTDOWN_TIMEOUT)


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
