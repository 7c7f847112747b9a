"""PostgreSQL access: the embedded server, the aiopg pool, named queries, LISTEN/NOTIFY.

Every statement is looked up by name in `queries/*.sql`; the schema is the numbered migrations in
`migrations/*.sql` (applied by photoslot/schema.py). Both ship inside the package.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiopg
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from photoslot import schema
from photoslot.logs import event
from photoslot.sql import QUERIES

log = logging.getLogger("photoslot.db")

psycopg2.extras.register_uuid()

Json = psycopg2.extras.Json
EMBEDDED_DB_NAME = "photoslot"


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL cannot be reached or dropped the connection; callers answer 503."""


# How long to wait for a pooled connection. A busy pool is worth waiting for; a database that just
# failed is not: right after a connection-level error the wait is short, so an ingest during an
# outage answers 503 database_unavailable within about a second even when connecting hangs (a
# blackholed host) instead of being refused.
ACQUIRE_TIMEOUT = 5.0
ACQUIRE_TIMEOUT_WHILE_DOWN = 1.0
DOWN_MEMORY_SECONDS = 30.0




def _adapt(params: dict[str, Any]) -> dict[str, Any]:
    return {k: psycopg2.extras.Json(v) if isinstance(v, (dict, list)) else v for k, v in params.items()}


# ---------------------------------------------------------------- embedded PostgreSQL

def start_embedded(data_dir: Path, *, watch: bool = False) -> str:
    """Start (or join) the pgserver PostgreSQL in <data_dir>/pg and return a DSN for our database.

    The processes using the server are listed beside it and the last one to exit stops it, so
    `serve`, `work` and CLI commands on one data dir share one server; `watch` (serve, work) also
    stops it when this process is killed (photoslot/embedded_pg.py).
    """
    from photoslot import embedded_pg, pgbin  # imported lazily: a DSN deployment never needs the binaries

    data_dir.mkdir(parents=True, exist_ok=True)
    pgbin.use_stable_copy(data_dir)  # the one-file binary: never run PostgreSQL from its temp folder
    server = embedded_pg.join(data_dir, watch=watch)
    admin_dsn = server.get_uri()
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DB_NAME,))
            if cur.fetchone() is None:
                try:
                    cur.execute(f'CREATE DATABASE "{EMBEDDED_DB_NAME}"')
                except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    pass  # another photoslot process won the race
    finally:
        conn.close()
    return server.get_uri(EMBEDDED_DB_NAME)


def resolve_dsn(cfg, *, watch: bool = False) -> str:
    return cfg.dsn or start_embedded(cfg.data_dir, watch=watch)


# ---------------------------------------------------------------- queries

class _Runner:
    """Runs named queries on one cursor source; shared by the pool and a transaction."""

    statements: collections.Counter

    async def _run(self, name: str, params: dict, fetch: str, /):
        sql = QUERIES[name]
        self.statements[name] += 1  # round trips by query name (docs/PERFORMANCE.md; a test counts them)
        try:
            async with self._cursor() as cur:
                await cur.execute(sql, _adapt(params))
                self._mark_up()
                if fetch == "one":
                    row = await cur.fetchone()
                    return dict(row) if row is not None else None
                if fetch == "all":
                    return [dict(r) for r in await cur.fetchall()]
                return cur.rowcount
        except (psycopg2.OperationalError, psycopg2.InterfaceError, ConnectionError) as exc:
            self._mark_down()
            raise DatabaseUnavailable(str(exc).strip().splitlines()[0] if str(exc) else "database connection lost") from exc

    def _mark_down(self) -> None:
        pass

    def _mark_up(self) -> None:
        pass

    async def fetchone(self, name: str, /, **params) -> dict | None:
        return await self._run(name, params, "one")

    async def fetchall(self, name: str, /, **params) -> list[dict]:
        return await self._run(name, params, "all")

    async def execute(self, name: str, /, **params) -> int:
        return await self._run(name, params, "none")


class _Tx(_Runner):
    def __init__(self, conn, on_down: Callable[[], None] | None = None,
                 statements: collections.Counter | None = None) -> None:
        self._conn = conn
        self._on_down = on_down
        self.statements = statements if statements is not None else collections.Counter()

    def _mark_down(self) -> None:
        if self._on_down is not None:
            self._on_down()

    def _cursor(self):
        return self._conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)


class Database(_Runner):
    def __init__(self, pool: aiopg.Pool, dsn: str) -> None:
        self.pool = pool
        self.dsn = dsn
        self._down_until = 0.0  # loop time until which the database counts as recently failed
        self.statements = collections.Counter()
        # Connections handed out and not given back yet (the gauge photoslot_db_pool_in_use): at rest
        # it is 0, and a connection that never comes back shows here and in `db_pool_closed`.
        self.in_use = 0

    def _mark_down(self) -> None:
        self._down_until = asyncio.get_running_loop().time() + DOWN_MEMORY_SECONDS

    def _mark_up(self) -> None:
        self._down_until = 0.0  # a statement just ran: back to waiting patiently for a busy pool

    async def _acquire(self):
        loop = asyncio.get_running_loop()
        timeout = ACQUIRE_TIMEOUT_WHILE_DOWN if loop.time() < self._down_until else ACQUIRE_TIMEOUT
        try:
            conn = await asyncio.wait_for(self.pool.acquire(), timeout=timeout)
        except (psycopg2.OperationalError, psycopg2.InterfaceError, OSError, asyncio.TimeoutError) as exc:
            self._mark_down()
            raise DatabaseUnavailable(f"cannot get a database connection: {exc.__class__.__name__}") from exc
        if conn.closed:  # died while idle in the pool (server restarted): drop it, never hand it out
            self.pool.release(conn)
            self._mark_down()
            raise DatabaseUnavailable("database connection lost")
        self.in_use += 1
        return conn

    def _release(self, conn) -> None:
        self.in_use -= 1
        self.pool.release(conn)

    @contextlib.asynccontextmanager
    async def _cursor(self):
        conn = await self._acquire()
        try:
            async with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
        finally:
            self._release(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Tx]:
        conn = await self._acquire()
        try:
            async with conn.cursor() as cur:
                await cur.execute("BEGIN")
            self.statements["BEGIN"] += 1
            try:
                yield _Tx(conn, self._mark_down, self.statements)
            except BaseException:
                if not conn.closed:
                    async with conn.cursor() as cur:
                        await cur.execute("ROLLBACK")
                raise
            async with conn.cursor() as cur:
                await cur.execute("COMMIT")
            self.statements["COMMIT"] += 1
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            self._mark_down()
            raise DatabaseUnavailable(str(exc).strip().splitlines()[0] if str(exc) else "database connection lost") from exc
        finally:
            self._release(conn)

    async def apply_schema(self) -> dict:
        """Bring the schema to this photoslot's latest migration (photoslot/schema.py); raises
        schema.SchemaTooNew for a database a newer photoslot migrated."""

        return await asyncio.to_thread(schema.migrate_dsn, self.dsn)

    async def close(self, timeout: float = 5, *, quiet: bool = False) -> None:
        """Close the pool: connections in use get `timeout` seconds to come back, then are closed.
        Logs `db_pool_closed` with how many were still handed out (0 after a clean stop), unless
        `quiet` (a pool closed because it could not be used at all)."""
        in_use, started = self.in_use, time.perf_counter()
        self.pool.close()
        terminated = False
        try:
            await asyncio.wait_for(self.pool.wait_closed(), timeout)
        except asyncio.TimeoutError:  # a connection stuck mid-query must not hang a shutdown
            terminated = True
            self.pool.terminate()
            # aiopg waits here for connections still being opened too: bounded as well
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.pool.wait_closed(), 1.0)
        if not quiet:
            event(log, "db_pool_closed", in_use=in_use, terminated=terminated,
                  ms=int((time.perf_counter() - started) * 1000))


async def connect(dsn: str, *, pool_size: int = 10, apply_schema: bool = True,
                  synchronous_commit: bool = True) -> Database:
    """`synchronous_commit=False`: this pool's commits do not wait for the WAL flush (config
    `database.synchronous_commit`; docs/PERFORMANCE.md — a shot's five commits waited ~75 ms
    in all for the disk of a busy PC)."""
    extra = {} if synchronous_commit else {"options": "-c synchronous_commit=off"}
    try:
        pool = await aiopg.create_pool(dsn, minsize=1, maxsize=pool_size, timeout=30, **extra)
    except psycopg2.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}") from exc
    db = Database(pool, dsn)
    if apply_schema:
        try:
            await db.apply_schema()
        except BaseException:  # e.g. schema.SchemaTooNew: the process stops, its pool must not leak
            await db.close(quiet=True)
            raise
    return db


# ---------------------------------------------------------------- LISTEN / NOTIFY

class Listener:
    """One dedicated connection per process that LISTENs and dispatches notifications.

    When the connection drops it reconnects by itself and calls every `on_reconnect` callback, so
    waiters re-read the database for anything they may have missed meanwhile.
    """

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._handlers: dict[str, list[Callable[[str], None]]] = {}
        self._on_reconnect: list[Callable[[], None]] = []
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, handler: Callable[[str], None]) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._on_reconnect.append(callback)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="photoslot-listener")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        first = True
        while True:
            conn = None
            try:
                conn = await aiopg.connect(self.dsn, timeout=10)
                async with conn.cursor() as cur:
                    for channel in self._handlers:
                        await cur.execute(f"LISTEN {channel}")
                self.connected.set()
                if not first:
                    log.info("notification listener reconnected")
                    for cb in self._on_reconnect:
                        cb()
                first = False
                while True:
                    msg = await conn.notifies.get()
                    for handler in self._handlers.get(msg.channel, ()):
                        handler(msg.payload)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.close()
                raise
            except Exception as exc:  # connection lost: keep trying, the poll fallback covers the gap
                self.connected.clear()
                log.warning("notification listener lost its connection (%s); retrying", exc.__class__.__name__)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                await asyncio.sleep(0.5)

