"""The database schema: numbered migrations, each applied once and recorded.

`photoslot/migrations/NNNN_what_it_does.sql` are the migrations; `0001_baseline.sql` is the schema
as it stood before migrations existed. Adding one is dropping the next number in that folder:

* each file runs once, in its own transaction, together with its row in `schema_migrations`
  (a failing file leaves nothing behind: neither half its statements nor a history row);
* one migrator at a time, under an advisory lock, so processes starting together apply it once;
* a database made by the pre-migration `schema.sql` (it has `schema_meta` version 1 and no
  history) is adopted: the baseline runs once more (it is idempotent, so a database from any
  earlier build ends up exactly at the baseline) and is recorded as `adopted`;
* a database that has migrations this photoslot does not know (a newer photoslot ran on it) is
  refused: `serve`/`work`/CLI stop with one line instead of running old code on a newer schema.

Every process migrates at start (`db.connect`); `photoslot migrate` does it on demand and reports.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from importlib import resources

import psycopg2
import psycopg2.errors
import psycopg2.extras

from photoslot.errors import PhotoslotError
from photoslot.sql import QUERIES

log = logging.getLogger("photoslot.schema")

FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaError(PhotoslotError):
    """The schema cannot be brought to this photoslot's version (a migration failed, a file is
    misnamed, or the lock could not be had)."""

    code = "schema_error"
    http_status = 503
    exit_code = 1


class SchemaTooNew(SchemaError):
    """The database was migrated by a newer photoslot than this one."""

    code = "schema_too_new"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def file(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def _folder():
    return resources.files("photoslot").joinpath("migrations")


def available(folder=None) -> list[Migration]:
    """The migrations shipped with this photoslot (or in `folder`), in order.

    Numbers start at 1 and have no gaps or twins: a gap or a twin is a merge gone wrong, and a
    misnamed .sql file would otherwise be skipped without a word.
    """
    folder = _folder() if folder is None else folder
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = FILE_NAME.match(entry.name)
        if not m:
            raise SchemaError(f"migration file {entry.name!r} is misnamed; use NNNN_lowercase_words.sql")
        found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    for expected, mig in enumerate(found, start=1):
        if mig.version != expected:
            raise SchemaError(f"migrations must be numbered 0001, 0002, … without gaps or twins; "
                              f"found {mig.file} where {expected:04d} was expected")
    if not found:
        raise SchemaError("no migrations found")
    return found


def latest_version(folder=None) -> int:
    return available(folder)[-1].version


# ---------------------------------------------------------------- reading a database's state

def _q(name: str) -> str:
    return QUERIES[name]


def _fetch(cur, name: str, **params) -> list[dict]:
    cur.execute(_q(name), params or None)
    return [dict(r) for r in cur.fetchall()] if cur.description else []


def _history(cur) -> list[dict]:
    tables = _fetch(cur, "schema_tables")[0]
    return _fetch(cur, "schema_history") if tables["has_history"] else []


def state(conn, folder=None) -> dict:
    """Where a database stands against this photoslot's migrations; never changes anything.

    `current` is the highest recorded version: 0 for an empty database, 1 for one made by the
    pre-migration schema.sql (which `migrate` adopts as the baseline).
    """
    known = available(folder)
    latest = known[-1].version
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        tables = _fetch(cur, "schema_tables")[0]
        history = _fetch(cur, "schema_history") if tables["has_history"] else []
        legacy = None
        if not history and tables["has_meta"]:
            legacy = (_fetch(cur, "schema_meta_version") or [{"version": 0}])[0]["version"]
    conn.rollback()  # a read-only look: leave no transaction open on the caller's connection
    applied = {h["version"] for h in history} or ({legacy} if legacy else set())
    unknown = sorted(v for v in applied if v > latest)
    pending = [m.file for m in known if m.version not in applied]
    return {
        "current": max(applied, default=0),
        "latest": latest,
        "up_to_date": not pending and not unknown and legacy is None,
        "pre_migration_schema": legacy is not None,
        "pending": pending,
        "unknown": unknown,
        "applied": [{"version": h["version"], "name": h["name"], "how": h["how"],
                     "applied_at": h["applied_at"]} for h in history],
        "changed": [m.file for m in known for h in history
                    if h["version"] == m.version and h["how"] == "applied" and h["checksum"] != m.checksum],
    }


def too_new_message(unknown: list[int], latest: int) -> str:
    return (f"the database schema is at version {max(unknown)}, newer than this photoslot knows "
            f"({latest}); run the photoslot that upgraded it, or restore a backup made before that")


# ---------------------------------------------------------------- migrating

def migrate(conn, *, now: dt.datetime | None = None, folder=None) -> dict:
    """Bring the database on `conn` (psycopg2, any state) to the latest migration.

    Returns {"from_version", "to_version", "applied": [file, …], "adopted_baseline": bool}.
    Raises SchemaTooNew for a database ahead of this photoslot, SchemaError when a migration fails.
    """
    known = available(folder)
    latest = known[-1].version
    conn.autocommit = True
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        # Fast path, without the lock: every start of every process comes through here.
        history = _history(cur)
        done = {h["version"] for h in history}
        if done and done >= {m.version for m in known}:
            if max(done) > latest:
                raise SchemaTooNew(too_new_message([v for v in done if v > latest], latest))
            return {"from_version": max(done), "to_version": max(done), "applied": [], "adopted_baseline": False}
        try:
            cur.execute(_q("schema_lock_timeout"))
            cur.execute(_q("schema_lock"))
        except psycopg2.errors.LockNotAvailable:
            raise SchemaError("another process held the schema lock for 60 s; is a migration stuck?") from None
        try:
            return _migrate_locked(cur, known, now)
        finally:
            cur.execute(_q("schema_unlock"))
            cur.execute(_q("schema_lock_timeout_reset"))


def _migrate_locked(cur, known: list[Migration], now) -> dict:
    latest = known[-1].version
    now = now or dt.datetime.now(dt.timezone.utc)
    cur.execute(_q("schema_history_create"))
    tables = _fetch(cur, "schema_tables")[0]
    history = _fetch(cur, "schema_history")
    adopted = False
    if not history and tables["has_meta"]:
        legacy = (_fetch(cur, "schema_meta_version") or [{"version": 0}])[0]["version"]
        if legacy > 1:
            raise SchemaTooNew(too_new_message([legacy], latest))
        if legacy == 1:  # made by the pre-migration schema.sql: the baseline, recorded as adopted
            _apply(cur, known[0], now, how="adopted")
            adopted = True
            history = _fetch(cur, "schema_history")
    done = {h["version"] for h in history}
    unknown = [v for v in done if v > latest]
    if unknown:
        raise SchemaTooNew(too_new_message(unknown, latest))
    report = {"from_version": max(done, default=0), "to_version": 0, "applied": [], "adopted_baseline": adopted}
    for mig in known:
        if mig.version in done:
            continue
        _apply(cur, mig, now, how="applied")
        report["applied"].append(mig.file)
        done.add(mig.version)
    report["to_version"] = max(done)
    for h in history:  # an applied file edited afterwards: its edit never reached this database
        mig = next((m for m in known if m.version == h["version"]), None)
        if mig is not None and h["how"] == "applied" and h["checksum"] != mig.checksum:
            log.warning("migration %s changed after it was applied to this database; "
                        "put changes in a new migration instead", mig.file)
    return report


def _apply(cur, mig: Migration, now, *, how: str) -> None:
    started = time.monotonic()
    log.info("applying migration %s (%s)", mig.file, how)
    try:
        cur.execute("BEGIN")
        cur.execute(mig.sql)
        cur.execute(_q("schema_history_insert"), {
            "version": mig.version, "name": mig.name, "checksum": mig.checksum, "how": how, "now": now,
            "duration_ms": int((time.monotonic() - started) * 1000)})
        cur.execute(_q("schema_meta_set"), {"version": mig.version, "now": now})
        cur.execute("COMMIT")
    except psycopg2.Error as exc:
        cur.execute("ROLLBACK")
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise SchemaError(f"migration {mig.file} failed and was rolled back: {first}") from None


def migrate_dsn(dsn: str, *, now: dt.datetime | None = None, folder=None) -> dict:
    conn = psycopg2.connect(dsn)
    try:
        return migrate(conn, now=now, folder=folder)
    finally:
        conn.close()


def state_dsn(dsn: str, folder=None) -> dict:
    conn = psycopg2.connect(dsn)
    try:
        return state(conn, folder)
    finally:
        conn.close()
