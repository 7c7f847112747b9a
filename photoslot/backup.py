"""Backup and restore of a whole studio, as one archive file.

What the archive holds (a plain tar; the dump is compressed by pg_dump, photos do not compress):

    manifest.json       what, when, from which photoslot/schema version; sha256 of every member
    database.dump       pg_dump --format=custom: slots, settings, templates' rows, jobs, stats, audit
    media/templates/…   the template images
    media/results/…     the results' files, with --with-results only
    secrets/…           the admin accounts and the JWT key (they live beside the database, not in it)
    config/<name>       the config file in use, for reference (restore puts it in the data dir)

Consistent while `serve` runs: the dump and the lists of files to copy are read from one exported
snapshot (`pg_dump --snapshot`), so a template added or removed meanwhile is either entirely in
the backup or entirely not. The archive holds secrets and is written readable by its owner only.

Restore goes into an empty data dir (embedded PostgreSQL) or an empty database (`database.dsn`);
a target holding anything is refused unless `--force`. File paths stored in the database are
moved to the new media root, results not in the archive are marked removed, and the schema is
migrated forward when the backup came from an older photoslot.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from photoslot import __version__, audit, pgbin, schema
from photoslot import db as dbmod
from photoslot.clock import SystemClock
from photoslot.errors import PhotoslotError
from photoslot.sql import QUERIES

FORMAT = "photoslot-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
SECRETS_DIR = "secrets"
RESTORED_CONFIG = "config-from-backup.yaml"
TOOL_TIMEOUT = 3600


class BackupError(PhotoslotError):
    code = "backup_failed"
    exit_code = 1


class TargetNotEmpty(PhotoslotError):
    code = "target_not_empty"
    exit_code = 1


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
                if path.is_file() and not path.name.startswith("."):
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


# ---------------------------------------------------------------- restore

def read_manifest(archive: Path) -> dict:
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            member = tar.getmember(MANIFEST)
            manifest = json.loads(tar.extractfile(member).read().decode("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"no such file: {archive}") from None
    except (tarfile.TarError, KeyError, ValueError, AttributeError) as exc:
        raise BackupError(f"{archive} is not a photoslot backup ({exc.__class__.__name__})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is not a photoslot backup")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise BackupError(f"{archive} was written by a newer photoslot (backup format "
                          f"{manifest['format_version']}); restore it with that version")
    return manifest


def _extract(archive: Path, dest: Path, manifest: dict) -> None:
    """Only the members the manifest lists, as regular files under `dest`, checked against it."""
    files = manifest["files"]
    with tarfile.open(archive, mode="r:*") as tar:
        for member in tar.getmembers():
            name = member.name
            if name == MANIFEST:
                continue
            parts = PurePosixPath(name).parts
            if name not in files or not member.isfile() or name.startswith("/") or ".." in parts:
                raise BackupError(f"the archive holds an unexpected member {name!r}; not restoring it")
            out = dest.joinpath(*parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, out.open("wb") as fh:
                shutil.copyfileobj(src, fh)
    for name, meta in files.items():
        path = dest.joinpath(*PurePosixPath(name).parts)
        if not path.is_file() or _sha256(path) != meta["sha256"]:
            raise BackupError(f"the archive is damaged: {name} is missing or does not match its checksum")


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


def _wipe(cfg, dsn: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(_q("restore_wipe"))
    finally:
        conn.close()
    for folder in (cfg.media_root, cfg.data_dir / SECRETS_DIR):
        shutil.rmtree(folder, ignore_errors=True)


async def restore(cfg, archive: Path, *, force: bool = False, clock=None, dsn: str | None = None) -> dict:
    """Restore `archive` into the configured data dir / database (audited). Returns a summary."""
    clock = clock or SystemClock()
    report, dsn = await asyncio.to_thread(_restore, cfg, archive, force, clock, dsn)
    database = await dbmod.connect(dsn, pool_size=1, apply_schema=False)
    try:
        await audit.record(database, clock, actor=audit.os_actor(), source="cli", action="studio.restore",
                           target=Path(archive).name,
                           details={k: report[k] for k in ("created_at", "photoslot_version", "schema_version",
                                                           "migrated", "results_restored", "replaced_existing")})
    finally:
        await database.close()
    return report


def _restore(cfg, archive: Path, force: bool, clock, dsn: str | None) -> tuple[dict, str]:
    started = time.monotonic()
    archive = Path(archive).resolve()
    manifest = read_manifest(archive)
    latest = schema.latest_version()
    if manifest["schema_version"] > latest:
        raise BackupError(f"the backup's schema is at version {manifest['schema_version']}, newer than this "
                          f"photoslot knows ({latest}); restore it with the photoslot that made it")
    dsn = dsn or dbmod.resolve_dsn(cfg)
    present = target_contents(cfg, dsn)
    if present and not force:
        where = "database.dsn" if cfg.dsn else f"data dir {cfg.data_dir}"
        raise TargetNotEmpty(f"the restore target ({where}) is not empty: {'; '.join(present)}; restore into an "
                             f"empty data dir or database, or add --force to replace what is there")
    if present:
        _wipe(cfg, dsn)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".photoslot-restore-", dir=cfg.data_dir) as tmp:
        work = Path(tmp)
        _extract(archive, work, manifest)
        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(_q("restore_server_version"))
                major = _major(cur.fetchone()[0])
        finally:
            conn.close()
        pg_restore = pgbin.client_tool("pg_restore", max(major, manifest.get("postgresql_server", 0)))
        _run_tool([str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                   f"--dbname={dsn}", str(work / DUMP)], "pg_restore")
        restored_results = _place_files(cfg, work, manifest)
    _move_paths(dsn, manifest, cfg.media_root, restored_results, clock.now())
    migrated = schema.migrate_dsn(dsn)
    return {"file": str(archive), "data_dir": str(cfg.data_dir), "database": "database.dsn" if cfg.dsn else "embedded",
            "created_at": manifest["created_at"], "photoslot_version": manifest["photoslot_version"],
            "schema_version": migrated["to_version"], "migrated": migrated["applied"],
            "counts": manifest["counts"], "results_restored": len(restored_results),
            "replaced_existing": bool(present), "config_copy": _config_copy(cfg, manifest),
            "ms": int((time.monotonic() - started) * 1000)}, dsn


def _place_files(cfg, work: Path, manifest: dict) -> list[str]:
    """Media under the new media root, secrets into the data dir; returns the restored result ids."""
    results = []
    for name in manifest["files"]:
        parts = PurePosixPath(name).parts
        src = work.joinpath(*parts)
        if parts[0] == "media":
            dest = cfg.media_root.joinpath(*parts[1:])
            if parts[1] == "results":
                results.append(PurePosixPath(name).stem)
        elif parts[0] == SECRETS_DIR:
            dest = cfg.data_dir / SECRETS_DIR / parts[-1]
        elif parts[0] == "config":
            dest = cfg.data_dir / RESTORED_CONFIG
        else:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), dest)
        if parts[0] in (SECRETS_DIR, "config"):
            _private(dest)
    return results


def _private(path: Path) -> None:
    try:
        path.chmod(0o600)
        if path.parent.name == SECRETS_DIR:
            path.parent.chmod(0o700)
    except OSError:  # a filesystem without modes (Windows, some mounts)
        pass


def _config_copy(cfg, manifest: dict) -> str | None:
    return str(cfg.data_dir / RESTORED_CONFIG) if any(n.startswith("config/") for n in manifest["files"]) else None


def _move_paths(dsn: str, manifest: dict, new_root: Path, restored_results: list[str], now: dt.datetime) -> None:
    old_root = manifest["media_root"].rstrip("/\\") + manifest.get("path_separator", "/")
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

