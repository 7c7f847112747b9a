"""Backup and restore of a whole studio, as one archive file.

What the archive holds (a plain tar; the dump is compressed by pg_dump, photos do not compress):

    manifest.json       what, when, from which photoslot/schema version; sha256 and size of every member
    database.dump       pg_dump --format=custom: slots, settings, templates' rows, jobs, stats, audit
    media/templates/…   the template images
    media/results/…     the results' files, with --with-results only
    secrets/…           the admin accounts, the JWT key and the settings key (they live beside the
                        database, not in it) — never first-start-passwords.txt
    config/<name>       the config file in use, for reference (restore puts it in the data dir)

Consistent while `serve` runs: the dump and the lists of files to copy are read from one exported
snapshot (`pg_dump --snapshot`), so a template added or removed meanwhile is either entirely in
the backup or entirely not. The archive holds secrets and is written readable by its owner only.

**Restore cannot lose a studio.** It goes in three steps, and the studio in place is touched
only by the last one:

1. *Check the whole archive* — the manifest (format, schema version), every member a regular file
   (no link, device or folder) named as the manifest names it, every name confined (no `..`, no
   absolute path, a known place: the dump, media/templates, media/results, secrets, config), every
   manifest entry present, every member's size and sha256 as the manifest says, the dump readable by
   `pg_restore --list`, the disk able to hold it.
2. *Build the new studio beside the old one* — the files into new folders next to the media root
   and the secrets folder (files 0600, folders 0700), the database into a new database on the same
   server (`pg_restore --single-transaction`), its file paths moved to the media root, its schema
   migrated forward, the restore written to its audit trail.
3. *Swap*, only when all of that is complete: the two databases exchange names in one transaction,
   the folders are renamed. The studio that was there is kept, under names ending
   `before-restore-<time>` and recorded in `<data_dir>/restore-previous.json`, for one
   `photoslot restore --undo` (which swaps back; run again, it swaps forward) until the admin
   removes it with `photoslot restore --discard-previous`.

A target that holds anything needs `--force`; one whose database is used by another process
(`serve`, `work`) is refused (stop them first). With `database.dsn` the database user needs to be
allowed to create databases (CREATEDB) and to own the studio's database to replace a studio; into
an empty database the restore goes in place (a failure leaves it empty again).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import secrets as random
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from photoslot import __version__, audit, pgbin, schema
from photoslot import db as dbmod
from photoslot.clock import SystemClock
from photoslot.errors import PhotoslotError
from photoslot.logs import escape_controls
from photoslot.secrets import FIRST_START_FILE
from photoslot.sql import QUERIES

FORMAT = "photoslot-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
SECRETS_DIR = "secrets"
RESTORED_CONFIG = "config-from-backup.yaml"
PREVIOUS_RECORD = "restore-previous.json"
TOOL_TIMEOUT = 3600
LIST_TIMEOUT = 120
# One path part of an archive member: what photoslot itself writes (uuids, extensions, key files).
SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
DISK_MARGIN = 64 * 1024 * 1024


class BackupError(PhotoslotError):
    code = "backup_failed"
    exit_code = 1


class TargetNotEmpty(PhotoslotError):
    code = "target_not_empty"
    exit_code = 1


class ArchiveRefused(BackupError):
    """The archive failed a check before anything was changed."""

    code = "archive_refused"


def _q(name: str) -> str:
    return QUERIES[name]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _major(server_version_num: int) -> int:
    return server_version_num // 10000


def _run_tool(cmd: list[str], what: str) -> None:
    """Run pg_dump/pg_restore; the DSN (maybe with a password) is in cmd, so only stderr is shown."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackupError(f"{what} could not run: {exc.__class__.__name__}: {exc}") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
        raise BackupError(f"{what} failed (exit {proc.returncode}): {' | '.join(lines[-3:]) or 'no message'}")


# ---------------------------------------------------------------- backup

async def backup(cfg, target: Path, *, with_results: bool = False, clock=None, dsn: str | None = None) -> dict:
    """Write the studio to `target` (replaced atomically when complete). Returns a summary."""
    return await asyncio.to_thread(_backup, cfg, target, with_results, clock or SystemClock(), dsn)


def _backup(cfg, target: Path, with_results: bool, clock, dsn: str | None) -> dict:
    started = time.monotonic()
    target = Path(target).resolve()
    dsn = dsn or dbmod.resolve_dsn(cfg)
    st = schema.state_dsn(dsn)
    if st["unknown"]:
        raise BackupError(schema.too_new_message(st["unknown"], st["latest"]) + "; back it up with that photoslot")
    media_root = cfg.media_root
    with tempfile.TemporaryDirectory(prefix="photoslot-backup-", dir=target.parent) as tmp:
        work = Path(tmp)
        snap_conn = psycopg2.connect(dsn)
        try:
            snap_conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
            with snap_conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(_q("backup_export_snapshot"))
                snap = cur.fetchone()
                cur.execute(_q("backup_template_files"))
                template_rows = cur.fetchall()
                result_rows = []
                if with_results:
                    cur.execute(_q("backup_result_files"))
                    result_rows = cur.fetchall()
                cur.execute(_q("backup_counts"))
                counts = dict(cur.fetchone())
            major = _major(snap["server_version_num"])
            pg_dump = pgbin.client_tool("pg_dump", major)
            _run_tool([str(pg_dump), "--format=custom", "--no-owner", "--no-privileges", "--no-comments",
                       f"--snapshot={snap['snapshot']}", f"--file={work / DUMP}", f"--dbname={dsn}"], "pg_dump")
            # Files are copied while the snapshot is still held: the rows above name them.
            members: dict[str, Path] = {DUMP: work / DUMP}
            missing: list[str] = []
            for kind, rows in (("template", template_rows), ("result", result_rows)):
                for row in rows:
                    name = _media_member(row["file_path"], media_root)
                    src = Path(row["file_path"])
                    if name is None or not src.is_file():
                        missing.append(f"{kind} {row['id']}: {row['file_path']}")
                        continue
                    dest = work / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)
                    members[name] = dest
        finally:
            snap_conn.close()
        secrets = cfg.data_dir / SECRETS_DIR
        if secrets.is_dir():
            for path in sorted(secrets.iterdir()):
                # first-start-passwords.txt holds passwords in clear: it stays on the PC it was made on
                if path.is_file() and not path.name.startswith(".") and path.name != FIRST_START_FILE:
                    members[f"{SECRETS_DIR}/{path.name}"] = path
        if cfg.source is not None and Path(cfg.source).is_file():
            members[f"config/{Path(cfg.source).name}"] = Path(cfg.source)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": clock.now().isoformat(),
            "photoslot_version": __version__,
            "schema_version": st["current"],
            "postgresql_server": major,
            "media_root": str(media_root),
            "path_separator": os.sep,
            "with_results": with_results,
            "counts": counts,
            "missing_files": missing,
            "files": {name: {"sha256": _sha256(path), "size": path.stat().st_size} for name, path in members.items()},
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str), encoding="utf-8")
        partial = target.with_name(f".{target.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds secrets
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.add(work / MANIFEST, arcname=MANIFEST)
                for name, path in members.items():
                    tar.add(path, arcname=name)
            os.replace(partial, target)  # a reader never sees half an archive under the real name
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return {"file": str(target), "size_bytes": target.stat().st_size, "schema_version": st["current"],
            "templates": len(template_rows), "results": len(result_rows), "counts": counts,
            "missing_files": missing, "with_results": with_results,
            "ms": int((time.monotonic() - started) * 1000)}


def _media_member(file_path: str, media_root: Path) -> str | None:
    """The archive name of a file under the media root (media/templates/…), None outside it."""
    try:
        rel = Path(file_path).resolve().relative_to(media_root)
    except ValueError:
        return None
    return "media/" + rel.as_posix()



# ---------------------------------------------------------------- restore: 1. check the whole archive

def read_manifest(archive: Path) -> dict:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            member = tar.next()  # `photoslot backup` writes the manifest first; the rest is read later
            if member is None or member.name != MANIFEST:
                raise ArchiveRefused(f"{archive} is not a photoslot backup (no manifest first); nothing was changed")
            if not member.isreg() or member.size > 64 * 1024 * 1024:
                raise ArchiveRefused(f"{archive} is not a photoslot backup (its manifest is not a plain file); "
                                     "nothing was changed")
            manifest = json.loads(tar.extractfile(member).read().decode("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"no such file: {archive}") from None
    except (tarfile.TarError, KeyError, ValueError, AttributeError, EOFError, OSError) as exc:
        raise ArchiveRefused(f"{archive} is not a photoslot backup, or it is damaged ({exc.__class__.__name__}); "
                             "nothing was changed") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveRefused(f"{archive} is not a photoslot backup; nothing was changed")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise ArchiveRefused(f"{archive} was written by a newer photoslot (backup format "
                             f"{manifest.get('format_version')}); restore it with that version; nothing was changed")
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("schema_version"), int):
        raise ArchiveRefused(f"{archive}: its manifest is damaged (no file list or schema version); nothing was "
                             "changed")
    return manifest


def member_place(name) -> tuple[str, tuple[str, ...]] | None:
    """Where an archive member goes: ("dump" | "media" | "secrets" | "config", its parts below that
    place), or None for a name that is not one photoslot writes — absolute, with `..`, a backslash,
    a NUL, an empty or odd part, or outside the known places."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    parts = tuple(name.split("/"))
    if not all(SAFE_PART.match(part) for part in parts):  # no "", ".", "..", "C:" …
        return None
    if parts == (DUMP,):
        return "dump", ()
    if parts[0] == "media" and len(parts) >= 3 and parts[1] in ("templates", "results"):
        return "media", parts[1:]
    if parts[0] == SECRETS_DIR and len(parts) == 2:
        return "secrets", parts[1:]
    if parts[0] == "config" and len(parts) == 2:
        return "config", parts[1:]
    return None


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.chmod(0o700)
    except OSError:  # a filesystem without modes
        pass


@dataclass
class Staged:
    """A checked archive, extracted into new folders beside the studio's own."""
    manifest: dict
    stamp: str
    work: Path                            # the dump and the config copy
    media: Path                           # becomes the media root
    secrets: Path                         # becomes <data_dir>/secrets
    results: list[str] = field(default_factory=list)   # job ids whose result files came along
    config: Path | None = None

    def remove(self) -> None:
        for folder in (self.work, self.media, self.secrets):
            shutil.rmtree(folder, ignore_errors=True)


def _stamp(clock) -> str:
    return clock.now().astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + random.token_hex(2)


def check_and_stage(cfg, archive: Path, clock) -> Staged:
    """Step 1: the whole archive checked and extracted into new folders; nothing of the studio in
    place is touched. ArchiveRefused (the folders removed) on anything amiss."""
    manifest = read_manifest(archive)
    latest = schema.latest_version()
    if manifest["schema_version"] > latest:
        raise ArchiveRefused(f"the backup's schema is at version {manifest['schema_version']}, newer than this "
                             f"photoslot knows ({latest}); restore it with the photoslot that made it")
    files: dict = manifest["files"]
    places = {}
    for name, meta in files.items():
        place = member_place(name)
        if place is None:
            raise ArchiveRefused(f"the manifest names {escape_controls(repr(name))}, which is not a place a "
                                 "photoslot backup writes to (outside the data dir, or not one of its files); "
                                 "nothing was changed")
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or \
                not isinstance(meta.get("size"), int) or meta["size"] < 0:
            raise ArchiveRefused(f"the manifest's entry for {name!r} has no checksum or size; nothing was changed")
        places[name] = place
    if DUMP not in files:
        raise ArchiveRefused("the archive holds no database dump; nothing was changed")
    if sum(1 for place in places.values() if place[0] == "config") > 1:
        raise ArchiveRefused("the archive holds more than one config file; nothing was changed")
    needed = sum(meta["size"] for meta in files.values())
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    media_root = cfg.media_root
    media_root.parent.mkdir(parents=True, exist_ok=True)
    for folder in {cfg.data_dir, media_root.parent}:
        free = shutil.disk_usage(folder).free
        if free < needed + DISK_MARGIN:
            raise ArchiveRefused(f"{folder} has {free // 2**20} MB free; the restore needs "
                                 f"{(needed + DISK_MARGIN) // 2**20} MB; nothing was changed")
    stamp = _stamp(clock)
    staged = Staged(manifest=manifest, stamp=stamp, work=cfg.data_dir / f".restore-{stamp}",
                    media=media_root.with_name(f"{media_root.name}.restoring-{stamp}"),
                    secrets=cfg.data_dir / f"{SECRETS_DIR}.restoring-{stamp}")
    try:
        for folder in (staged.work, staged.media, staged.secrets):
            _private_dir(folder)
        _extract_checked(archive, staged, places)
        _list_dump(staged.work / DUMP, manifest)
    except BaseException:
        staged.remove()
        raise
    return staged


def _extract_checked(archive: Path, staged: Staged, places: dict) -> None:
    files = staged.manifest["files"]
    seen: set[str] = set()
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                name = member.name
                if name == MANIFEST:
                    continue
                shown = escape_controls(repr(name))
                if name not in files:
                    raise ArchiveRefused(f"the archive holds {shown}, which its manifest does not list; "
                                         "nothing was changed")
                if name in seen:
                    raise ArchiveRefused(f"the archive holds {shown} twice; nothing was changed")
                if not member.isreg():  # a symbolic or hard link, a device, a folder, a pipe
                    raise ArchiveRefused(f"the archive's {shown} is not a plain file (a link or a device); "
                                         "nothing was changed")
                seen.add(name)
                kind, parts = places[name]
                if kind == "secrets" and parts[0] == FIRST_START_FILE:
                    dest = None  # an older backup's clear-text passwords: checked, never restored
                elif kind == "dump":
                    dest = staged.work / DUMP
                elif kind == "config":
                    dest = staged.config = staged.work / RESTORED_CONFIG
                elif kind == "media":
                    dest = staged.media.joinpath(*parts)
                    if parts[0] == "results":
                        staged.results.append(PurePosixPath(parts[-1]).name.split(".")[0])
                else:
                    dest = staged.secrets / parts[0]
                _copy_member(tar, member, dest, files[name], shown)
    except (tarfile.TarError, EOFError, zlib_error()) as exc:
        raise ArchiveRefused(f"the archive is damaged ({exc.__class__.__name__}: cut short or corrupt); nothing "
                             "was changed") from None
    missing = sorted(set(files) - seen)
    if missing:
        raise ArchiveRefused(f"the archive is damaged: {escape_controls(missing[0])} is in its manifest but not in "
                             f"it ({len(missing)} missing in all); nothing was changed")


def zlib_error():
    import zlib
    return zlib.error


def _copy_member(tar, member, dest: Path | None, meta: dict, shown: str) -> None:
    """The member's bytes to `dest` (0600; None: read and checked only), its size and sha256 checked
    as they stream."""
    if member.size != meta["size"]:
        raise ArchiveRefused(f"the archive is damaged: {shown} is {member.size} bytes, its manifest says "
                             f"{meta['size']}; nothing was changed")
    digest = hashlib.sha256()
    size = 0
    src = tar.extractfile(member)
    out = None
    if dest is not None:
        _private_dir(dest.parent)
        out = os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
    try:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            size += len(chunk)
            if size > meta["size"]:
                break
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    if size != meta["size"] or digest.hexdigest() != meta["sha256"]:
        raise ArchiveRefused(f"the archive is damaged: {shown} does not match its checksum; nothing was changed")


def _list_dump(dump: Path, manifest: dict) -> None:
    """`pg_restore --list`: the dump is one pg_restore can read (its table of contents, without a database)."""
    tool = pgbin.client_tool("pg_restore", max(16, int(manifest.get("postgresql_server") or 0)))
    try:
        proc = subprocess.run([str(tool), "--list", str(dump)], capture_output=True, text=True,
                              timeout=LIST_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackupError(f"pg_restore could not run: {exc.__class__.__name__}: {exc}") from None
    if proc.returncode != 0:
        last = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()][-1:] or ["no message"]
        raise ArchiveRefused(f"the archive's database dump cannot be read ({escape_controls(last[0])}); nothing "
                             "was changed")


# ---------------------------------------------------------------- restore: the target

def _maintenance_dsn(dsn: str) -> str:
    """The same server and user, connected to its maintenance database (to create and rename databases)."""
    return psycopg2.extensions.make_dsn(dsn, dbname="postgres")


def _db_name(dsn: str) -> str:
    name = psycopg2.extensions.parse_dsn(dsn).get("dbname")
    if not name:
        raise BackupError("the database DSN names no database (dbname=…)")
    return name


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _with_db(dsn: str, name: str) -> str:
    return psycopg2.extensions.make_dsn(dsn, dbname=name)


def _side_name(name: str, what: str, stamp: str) -> str:
    """A database name for a studio kept aside (PostgreSQL names are at most 63 bytes)."""
    return f"{name[:63 - len(what) - len(stamp) - 2]}_{what}_{stamp}".replace("-", "_")


def target_contents(cfg, dsn: str) -> list[str]:
    """What is already at the restore target; empty = nothing to overwrite."""
    found = []
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(_q("restore_user_tables"))
            tables = cur.fetchone()[0]
    finally:
        conn.close()
    if tables:
        found.append(f"the database holds {tables} table(s)")
    for folder in (cfg.media_root, cfg.data_dir / SECRETS_DIR):
        if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
            found.append(f"{folder} holds files")
    return found


OTHERS_GRACE_SECONDS = 3.0  # a command that just ended leaves its server process a moment longer


def _others_connected(dsn: str, names: list[str]) -> int:
    """Sessions of other processes on these databases; looked at again for a few seconds, so a
    command that just exited (its server process still winding down) is not taken for `serve`."""
    conn = psycopg2.connect(_maintenance_dsn(dsn))
    try:
        end = time.monotonic() + OTHERS_GRACE_SECONDS
        with conn.cursor() as cur:
            while True:
                cur.execute(_q("restore_other_sessions"), {"names": psycopg2.extras.Json(names)})
                count = cur.fetchone()[0]
                if not count or time.monotonic() >= end:
                    return count
                time.sleep(0.1)
    finally:
        conn.close()


def _may_swap(dsn: str, name: str) -> bool:
    """Whether this database user may create databases and rename the studio's."""
    conn = psycopg2.connect(_maintenance_dsn(dsn))
    try:
        with conn.cursor() as cur:
            cur.execute(_q("restore_may_swap"), {"name": name})
            row = cur.fetchone()
            return bool(row and row[0])
    finally:
        conn.close()


def _admin_sql(dsn: str, statements: list[str], *, transaction: bool) -> None:
    conn = psycopg2.connect(_maintenance_dsn(dsn))
    try:
        if transaction:
            with conn, conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
        else:
            conn.autocommit = True
            with conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
    finally:
        conn.close()


def _rename_databases(dsn: str, pairs: list[tuple[str, str]]) -> None:
    """Rename databases in one transaction: the swap is whole or not at all."""
    _admin_sql(dsn, [f"ALTER DATABASE {_ident(a)} RENAME TO {_ident(b)}" for a, b in pairs], transaction=True)


def previous_record(cfg) -> dict | None:
    path = cfg.data_dir / PREVIOUS_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read ({exc.__class__.__name__}); look at it before restoring again") \
            from None


def _write_record(cfg, record: dict | None) -> None:
    path = cfg.data_dir / PREVIOUS_RECORD
    if record is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------- restore: 2. build, 3. swap

async def restore(cfg, archive: Path, *, force: bool = False, clock=None, dsn: str | None = None) -> dict:
    """Restore `archive` into the configured data dir / database (audited). Returns a summary."""
    clock = clock or SystemClock()
    started = time.monotonic()
    archive = Path(archive).resolve()
    await asyncio.to_thread(read_manifest, archive)  # not a backup at all: said before anything else
    dsn = dsn or await asyncio.to_thread(dbmod.resolve_dsn, cfg)
    plan = await asyncio.to_thread(_plan, cfg, dsn, force)
    staged = await asyncio.to_thread(check_and_stage, cfg, archive, clock)
    built = None
    try:
        built = await asyncio.to_thread(_build, cfg, dsn, staged, plan, clock)
        database = await dbmod.connect(built["dsn"], pool_size=1, apply_schema=False)
        try:
            await audit.record(database, clock, actor=audit.os_actor(), source="cli", action="studio.restore",
                               target=archive.name,
                               details={"created_at": staged.manifest.get("created_at"),
                                        "photoslot_version": staged.manifest.get("photoslot_version"),
                                        "schema_version": built["schema_version"], "migrated": built["migrated"],
                                        "results_restored": len(staged.results),
                                        "replaced_existing": bool(plan["present"]),
                                        "previous_kept": plan["present"] != []})
        finally:
            await database.close()
        kept = await asyncio.to_thread(_swap_in, cfg, dsn, staged, plan, built, archive)
    except BaseException:
        staged.remove()
        if built is not None and not built.get("swapped"):
            await asyncio.to_thread(_unbuild, dsn, plan, built)
        raise
    staged.remove()  # only the work folder is left by now
    return {"file": str(archive), "data_dir": str(cfg.data_dir), "database": "database.dsn" if cfg.dsn else "embedded",
            "created_at": staged.manifest["created_at"], "photoslot_version": staged.manifest["photoslot_version"],
            "schema_version": built["schema_version"], "migrated": built["migrated"],
            "counts": staged.manifest.get("counts") or {}, "results_restored": len(staged.results),
            "replaced_existing": bool(plan["present"]), "config_copy": kept["config_copy"],
            "previous_kept": kept["previous"], "ms": int((time.monotonic() - started) * 1000)}


def _plan(cfg, dsn: str, force: bool) -> dict:
    """What the restore will replace, and how; refused here (nothing changed) when it may not."""
    name = _db_name(dsn)
    present = target_contents(cfg, dsn)
    if present and not force:
        where = "database.dsn" if cfg.dsn else f"data dir {cfg.data_dir}"
        raise TargetNotEmpty(f"the restore target ({where}) is not empty: {'; '.join(present)}; restore into an "
                             f"empty data dir or database, or add --force to replace what is there (it is kept "
                             f"for `photoslot restore --undo`)")
    previous = previous_record(cfg)
    if present and previous is not None:
        raise TargetNotEmpty(f"the studio replaced by the restore of {previous.get('at')} is still kept "
                             f"({cfg.data_dir / PREVIOUS_RECORD}): `photoslot restore --undo` to go back to it, or "
                             "`photoslot restore --discard-previous` to remove it, then restore again")
    tables = any(line.startswith("the database holds") for line in present)
    if _others_connected(dsn, [name]):
        raise TargetNotEmpty(f"another process is connected to the database {name!r}: stop `photoslot serve` "
                             "and `photoslot work` on this studio first")
    swap = tables
    if swap and not _may_swap(dsn, name):
        raise TargetNotEmpty(f"to replace the studio in database {name!r}, restore builds a new database and swaps "
                             "the two by renaming them: the database user needs CREATEDB and must own "
                             f"{name!r}; or restore into an empty database")
    return {"name": name, "present": present, "swap": swap}


def _build(cfg, dsn: str, staged: Staged, plan: dict, clock) -> dict:
    """Step 2: the database built (a new one when a studio is there, else the empty target itself)."""
    name = plan["name"]
    built = {"dsn": dsn, "new_name": None, "swapped": False}
    if plan["swap"]:
        built["new_name"] = _side_name(name, "restoring", staged.stamp)
        _admin_sql(dsn, [f"CREATE DATABASE {_ident(built['new_name'])}"], transaction=False)
        built["dsn"] = _with_db(dsn, built["new_name"])
    target = built["dsn"]
    try:
        conn = psycopg2.connect(target)
        try:
            with conn.cursor() as cur:
                cur.execute(_q("restore_server_version"))
                major = _major(cur.fetchone()[0])
        finally:
            conn.close()
        pg_restore = pgbin.client_tool("pg_restore", max(major, staged.manifest.get("postgresql_server", 0)))
        _run_tool([str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                   f"--dbname={target}", str(staged.work / DUMP)], "pg_restore")
        _move_paths(target, staged.manifest, cfg.media_root, staged.results, clock.now())
        migrated = schema.migrate_dsn(target)
    except BaseException:
        _unbuild(dsn, plan, built)
        built["undone"] = True
        raise
    built["schema_version"], built["migrated"] = migrated["to_version"], migrated["applied"]
    return built


def _unbuild(dsn: str, plan: dict, built: dict) -> None:
    """A build that failed or was not swapped in: the new database dropped, or the empty target
    emptied again."""
    if built.get("undone"):
        return
    built["undone"] = True
    if built["new_name"]:
        _admin_sql(dsn, [f"DROP DATABASE IF EXISTS {_ident(built['new_name'])}"], transaction=False)
    else:
        conn = psycopg2.connect(dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(_q("restore_wipe"))
        finally:
            conn.close()


def _swap_in(cfg, dsn: str, staged: Staged, plan: dict, built: dict, archive: Path) -> dict:
    """Step 3: databases and folders swapped; the studio that was there kept and recorded."""
    stamp = staged.stamp
    name = plan["name"]
    moves = [(staged.media, cfg.media_root), (staged.secrets, cfg.data_dir / SECRETS_DIR)]
    config_copy = None
    if staged.config is not None:
        moves.append((staged.config, cfg.data_dir / RESTORED_CONFIG))
        config_copy = str(cfg.data_dir / RESTORED_CONFIG)
    kept_db = _side_name(name, "before_restore", stamp) if built["new_name"] else None
    if kept_db:
        _rename_databases(dsn, [(name, kept_db), (built["new_name"], name)])
        built["swapped"] = True
    done: list[tuple[Path, Path | None]] = []  # (live path, where the old one went)
    try:
        for new, live in moves:
            aside = None
            if live.exists():
                aside = live.with_name(f"{live.name}.before-restore-{stamp}")
                os.replace(live, aside)
            done.append((live, aside))
            os.replace(new, live)
    except BaseException:
        for live, aside in reversed(done):  # put back what was moved, and the database
            if live.exists() and aside is not None:
                shutil.rmtree(live, ignore_errors=True) if live.is_dir() else live.unlink(missing_ok=True)
            if aside is not None:
                os.replace(aside, live)
        if kept_db:
            _rename_databases(dsn, [(name, built["new_name"]), (kept_db, name)])
            built["swapped"] = False
        raise
    previous = None
    if plan["present"]:
        previous = {"at": dt.datetime.now(dt.timezone.utc).isoformat(), "archive": str(archive), "stamp": stamp,
                    "database": {"live": name, "kept": kept_db},
                    "paths": [{"live": str(live), "kept": str(aside) if aside else None} for live, aside in done]}
        _write_record(cfg, previous)
    else:  # nothing was there: the empty folders that made room go
        for _live, aside in done:
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True) if aside.is_dir() else aside.unlink(missing_ok=True)
    return {"config_copy": config_copy, "previous": previous}


# ---------------------------------------------------------------- undo, discard

def _swap_back(cfg, dsn: str, record: dict, stamp: str) -> dict:
    """Exchange the live studio and the kept one (databases by name, folders by rename)."""
    db = record["database"]
    if _others_connected(dsn, [db["live"]] + ([db["kept"]] if db["kept"] else [])):
        raise TargetNotEmpty(f"another process is connected to the database {db['live']!r}: stop `photoslot serve` "
                             "and `photoslot work` on this studio first")
    new_db = dict(db)
    if db["kept"]:
        aside = _side_name(db["live"], "undone", stamp)
        _rename_databases(dsn, [(db["live"], aside), (db["kept"], db["live"])])
        new_db["kept"] = aside
    paths = []
    for item in record["paths"]:
        live = Path(item["live"])
        kept = Path(item["kept"]) if item["kept"] else None
        aside = live.with_name(f"{live.name}.undone-{stamp}")
        if live.exists():
            os.replace(live, aside)
        if kept is not None and kept.exists():
            os.replace(kept, live)
        paths.append({"live": str(live), "kept": str(aside)})
    return {**record, "database": new_db, "paths": paths, "stamp": stamp,
            "at": dt.datetime.now(dt.timezone.utc).isoformat()}


async def undo(cfg, *, clock=None, dsn: str | None = None) -> dict:
    """`photoslot restore --undo`: back to the studio the last restore replaced (run again: forward)."""
    clock = clock or SystemClock()
    record = previous_record(cfg)
    if record is None:
        raise BackupError(f"no restore to undo: {cfg.data_dir / PREVIOUS_RECORD} does not exist")
    dsn = dsn or await asyncio.to_thread(dbmod.resolve_dsn, cfg)
    swapped = await asyncio.to_thread(_swap_back, cfg, dsn, record, _stamp(clock))
    _write_record(cfg, swapped)
    database = await dbmod.connect(dsn, pool_size=1, apply_schema=False)
    try:
        await audit.record(database, clock, actor=audit.os_actor(), source="cli", action="studio.restore_undo",
                           target=record.get("archive"), details={"kept_now": swapped["database"]["kept"]})
    finally:
        await database.close()
    return {"data_dir": str(cfg.data_dir), "kept": swapped}


async def discard_previous(cfg, *, clock=None, dsn: str | None = None) -> dict:
    """`photoslot restore --discard-previous`: the studio kept by the last restore (or undo) is removed."""
    clock = clock or SystemClock()
    record = previous_record(cfg)
    if record is None:
        raise BackupError(f"nothing kept: {cfg.data_dir / PREVIOUS_RECORD} does not exist")
    dsn = dsn or await asyncio.to_thread(dbmod.resolve_dsn, cfg)
    kept_db = record["database"]["kept"]

    def remove() -> None:
        if kept_db:
            _admin_sql(dsn, [f"DROP DATABASE IF EXISTS {_ident(kept_db)}"], transaction=False)
        for item in record["paths"]:
            if item["kept"]:
                kept = Path(item["kept"])
                shutil.rmtree(kept, ignore_errors=True) if kept.is_dir() else kept.unlink(missing_ok=True)
        _write_record(cfg, None)

    await asyncio.to_thread(remove)
    database = await dbmod.connect(dsn, pool_size=1, apply_schema=False)
    try:
        await audit.record(database, clock, actor=audit.os_actor(), source="cli",
                           action="studio.restore_discard_previous", target=record.get("archive"),
                           details={"database": kept_db, "paths": [i["kept"] for i in record["paths"] if i["kept"]]})
    finally:
        await database.close()
    return {"removed_database": kept_db, "removed_paths": [i["kept"] for i in record["paths"] if i["kept"]]}


def _move_paths(dsn: str, manifest: dict, new_root: Path, restored_results: list[str], now: dt.datetime) -> None:
    old_root = str(manifest.get("media_root", "")).rstrip("/\\") + manifest.get("path_separator", "/")
    params = {"old_root": old_root, "new_root": str(new_root) + os.sep}
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:  # one transaction
            for name in ("restore_move_template_paths", "restore_move_job_paths", "restore_move_media_object_paths"):
                cur.execute(_q(name), params)
            cur.execute(_q("restore_results_not_restored"),
                        {"now": now, "restored": psycopg2.extras.Json(restored_results)})
    finally:
        conn.close()
