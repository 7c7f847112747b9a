"""Restore drills: no `photoslot restore`, given any file, leaves a studio worse than it found it.

A studio on a database of its own (database.dsn) with a template, an ingest password, a settings
key and first-start passwords is backed up, changed, and then handed archives that are cut short,
corrupt, or crafted (a member or manifest entry with `..`, an absolute path, a symbolic or hard
link, a device, a wrong checksum, a dump pg_restore cannot read) — with and without --force. After
each refusal the studio is byte-for-byte what it was: every table's rows, every setting, every file
under the data dir and its mode, no extra database on the server. A good archive with --force
replaces the studio, keeps the one that was there for `restore --undo` (back and forth), and
`restore --discard-previous` removes it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import sys
import tarfile
from pathlib import Path

import psycopg2
import pytest
import yaml

from tests.acceptance.procs import cli
from tests.conftest import FIXTURES, INGEST_PASSWORD, database_of_its_own

pytestmark = pytest.mark.slow


def studio_state(dsn: str, data_dir: Path) -> dict:
    """Everything a restore could change: rows of every table, the settings, the audit trail, every
    file under the data dir (bytes and mode), the databases on the server."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
            tables = [r[0] for r in cur.fetchall()]
            counts = {}
            for table in tables:
                cur.execute(f'SELECT count(*) FROM "{table}"')
                counts[table] = cur.fetchone()[0]
            cur.execute("SELECT key, value::text, updated_at, updated_by FROM settings ORDER BY key")
            settings = cur.fetchall()
            cur.execute("SELECT id, action, target FROM audit_log ORDER BY id")
            audit = cur.fetchall()
            cur.execute("SELECT id, name, provider_id, settings_json::text, version FROM slots ORDER BY id")
            slots = cur.fetchall()
            cur.execute("SELECT datname FROM pg_database ORDER BY datname")
            databases = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    files = {}
    for path in sorted(data_dir.rglob("*")):
        rel = str(path.relative_to(data_dir))
        mode = stat.S_IMODE(path.lstat().st_mode)
        files[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), mode) if path.is_file() else ("dir", mode)
    return {"counts": counts, "settings": settings, "audit": audit, "slots": slots, "databases": databases,
            "files": files}


def dsn_name(dsn: str) -> str:
    return psycopg2.extensions.parse_dsn(dsn)["dbname"]


def slot_name(dsn: str, slot: str = "slot-001") -> str:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM slots WHERE id = %s", (slot,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def write_archive(path: Path, files: dict[str, bytes], manifest: dict, extra: list | None = None) -> Path:
    """A tar like `photoslot backup` writes, from `files` and `manifest`; `extra`: odd members
    (tarfile.TarInfo, bytes or None) added after the manifest."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(info: tarfile.TarInfo, data: bytes | None) -> None:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        add(info, body)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            add(info, data)
        for info, data in extra or []:
            add(info, data)
    return path


def entry(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@pytest.fixture
def studio(tmp_path, pg_dsn, scratch_db, emulator):
    """A studio on a database of its own: slot-001 named "Before", a style template, the ingest
    password, its settings key, first-start passwords in the secrets folder."""
    from tests.conftest import write_config

    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=scratch_db,
                          emulator_url=emulator.base_url)
    for args in (("slot", "set", "slot-001", "--name", "Before", "--provider", "gemini", "--operation",
                  "style_transfer", "--prompt", "paint it", "--template", f"style={FIXTURES / 'template_style.jpg'}"),
                 ("settings", "set", "--ingest-password", INGEST_PASSWORD)):
        r = cli(config, scratch_db, *args)
        assert r.returncode == 0, r.stderr
    secrets = tmp_path / "data" / "secrets"
    (secrets / "first-start-passwords.txt").write_text("admin serg password: not-a-real-one-7\n")
    os.chmod(secrets / "first-start-passwords.txt", 0o600)
    return config, scratch_db, tmp_path / "data"


@pytest.fixture
def empty_db(pg_dsn):
    """A second empty database of the test's own (scratch_db is the studio's)."""
    with database_of_its_own(pg_dsn, "photoslot_empty") as dsn:
        yield dsn


def restore(config, dsn, *args):
    return cli(config, dsn, "restore", *args, timeout=180)


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_bad_archives_change_nothing_and_a_good_one_swaps_with_an_undo(studio, tmp_path):
    config, dsn, data_dir = studio
    good = tmp_path / "good.tar"
    r = cli(config, dsn, "backup", str(good))
    assert r.returncode == 0, r.stderr
    files = members(good)
    manifest = json.loads(files.pop("manifest.json"))
    assert "secrets/first-start-passwords.txt" not in files  # passwords in clear never leave the PC
    assert "secrets/settings.key" in files and "database.dump" in files
    template = next(name for name in files if name.startswith("media/templates/"))
    assert cli(config, dsn, "slot", "set", "slot-001", "--name", "After the backup").returncode == 0
    before = studio_state(dsn, data_dir)

    def crafted(name: str, files_: dict, manifest_: dict, extra=None) -> Path:
        return write_archive(tmp_path / name, files_, manifest_, extra)

    def with_entry(name: str, data: bytes) -> tuple[dict, dict]:
        return {**files, name: data}, {**manifest, "files": {**manifest["files"], name: entry(data)}}

    def link(name: str, kind, target: str) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        return info

    dump = files["database.dump"]
    bad = {}
    bad["cut short"] = tmp_path / "cut.tar"
    bad["cut short"].write_bytes(good.read_bytes()[:len(good.read_bytes()) * 6 // 10])
    bad["not a backup"] = tmp_path / "holiday.jpg"
    bad["not a backup"].write_bytes((FIXTURES / "dslr_landscape.jpg").read_bytes())
    corrupt = bytearray(dump)
    corrupt[len(corrupt) // 2:len(corrupt) // 2 + 64] = os.urandom(64)
    bad["corrupt dump"] = crafted("corrupt.tar", {**files, "database.dump": bytes(corrupt)}, manifest)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the studio's")
    bad["manifest entry with .."] = crafted("dotdot-manifest.tar", files, {
        **manifest, "files": {**manifest["files"], "media/templates/../../../outside.txt": entry(b"x")}})
    bad["member with .."] = crafted("dotdot-member.tar", *with_entry("media/templates/../../evil.jpg", b"x"))
    bad["absolute member"] = crafted("absolute.tar", *with_entry(str(tmp_path / "evil.jpg"), b"x"))
    symlink = link(template, tarfile.SYMTYPE, "/etc/passwd")
    bad["symbolic link"] = crafted("symlink.tar", {k: v for k, v in files.items() if k != template}, manifest,
                                   [(symlink, None)])
    hardlink = link(template, tarfile.LNKTYPE, "secrets/settings.key")
    bad["hard link"] = crafted("hardlink.tar", {k: v for k, v in files.items() if k != template}, manifest,
                               [(hardlink, None)])
    device = link("media/templates/dev", tarfile.CHRTYPE, "")
    device.devmajor, device.devminor = 1, 3
    bad["device"] = crafted("device.tar", files, {**manifest, "files": {**manifest["files"],
                                                                        "media/templates/dev": entry(b"")}},
                            [(device, None)])
    bad["wrong checksum"] = crafted("checksum.tar", files, {
        **manifest, "files": {**manifest["files"], template: {**manifest["files"][template], "sha256": "0" * 64}}})
    garbage = os.urandom(4096)  # a "dump" whose checksum the crafted manifest agrees with
    bad["unreadable dump"] = crafted("garbage-dump.tar", {**files, "database.dump": garbage},
                                     {**manifest, "files": {**manifest["files"], "database.dump": entry(garbage)}})
    bad["member not in the manifest"] = crafted("unlisted.tar", {**files, "media/templates/extra.jpg": b"x"},
                                                manifest)

    refusals = {}
    for what, archive in bad.items():
        for force in ((), ("--force",)):
            r = restore(config, dsn, str(archive), *force)
            assert r.returncode != 0, (what, force, r.stdout)
            refusals[(what, bool(force))] = r.stderr.strip().splitlines()[-1]
            assert studio_state(dsn, data_dir) == before, (what, force, r.stderr)
            # without --force the target is refused (or the file, if it is no backup at all); with it, the archive
            assert "nothing was changed" in r.stderr or (not force and "is not empty" in r.stderr), \
                (what, force, r.stderr)
    assert outside.read_text() == "not the studio's"
    print("\nrestore refusals: " + json.dumps({f"{w} {'--force' if f else ''}".strip(): m
                                               for (w, f), m in refusals.items()}, ensure_ascii=False))

    # while another process uses the database (a `serve`), even a good archive is refused
    held = psycopg2.connect(dsn)
    try:
        r = restore(config, dsn, str(good), "--force")
        assert r.returncode == 1 and "another process is connected" in r.stderr, r.stderr
        assert studio_state(dsn, data_dir) == before
    finally:
        held.close()

    # the good archive, forced: the studio of the backup, files the owner's only, the old one kept
    r = restore(config, dsn, str(good), "--force")
    assert r.returncode == 0, r.stderr
    assert "restore --undo" in r.stdout
    assert slot_name(dsn) == "Before"
    for path in data_dir.rglob("*"):
        if "before-restore" in str(path) or path.name == "restore-previous.json":
            continue
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    assert not (data_dir / "secrets" / "first-start-passwords.txt").exists()
    restored = studio_state(dsn, data_dir)
    kept = [name for name in restored["databases"] if name.startswith(dsn_name(dsn)[:27]) and "before_restore" in name]
    assert len(kept) == 1, restored["databases"]
    r = restore(config, dsn, str(good), "--force")  # a second replace would drop the kept studio: refused
    assert r.returncode == 1 and "--discard-previous" in r.stderr
    assert studio_state(dsn, data_dir) == restored

    r = restore(config, dsn, "--undo")
    assert r.returncode == 0, r.stderr
    assert slot_name(dsn) == "After the backup"
    undone = studio_state(dsn, data_dir)
    keep_files = {k: v for k, v in undone["files"].items() if "undone" not in k and "before-restore" not in k
                  and k != "restore-previous.json"}
    assert keep_files == {k: v for k, v in before["files"].items()}  # the studio before the restore, to the byte
    assert undone["counts"]["audit_log"] == before["counts"]["audit_log"] + 1  # + the undo itself
    assert [s for s in undone["settings"] if s[0] != "served_base_url"] == \
        [s for s in before["settings"] if s[0] != "served_base_url"]
    assert undone["slots"] == before["slots"]

    r = restore(config, dsn, "--undo")  # and forward again
    assert r.returncode == 0, r.stderr
    assert slot_name(dsn) == "Before"
    r = restore(config, dsn, "--discard-previous")
    assert r.returncode == 0, r.stderr
    final = studio_state(dsn, data_dir)
    ours = dsn_name(dsn)[:27]  # the kept studio's database is named after this one
    assert not [name for name in final["databases"] if name.startswith(ours) and name != dsn_name(dsn)]
    assert not [name for name in final["files"] if "undone" in name or "before-restore" in name]
    assert not (data_dir / "restore-previous.json").exists()
    audit = [a[1] for a in final["audit"]]  # the restored studio's own trail: its restore, the way back to it
    assert audit[-3:] == ["studio.restore", "studio.restore_undo", "studio.restore_discard_previous"]


def test_a_bad_archive_into_an_empty_data_dir_leaves_it_empty(studio, tmp_path, empty_db):
    """No --force needed for an empty target, and a refusal there leaves nothing behind either."""
    config, dsn, _ = studio
    good = tmp_path / "good.tar"
    assert cli(config, dsn, "backup", str(good)).returncode == 0
    empty_config = tmp_path / "empty.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["data_dir"] = str(tmp_path / "empty-data")
    raw["database"]["dsn"] = empty_db
    empty_config.write_text(yaml.safe_dump(raw))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    r = restore(empty_config, empty_db, str(cut))
    assert r.returncode == 1 and "nothing was changed" in r.stderr
    conn = psycopg2.connect(empty_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
    empty_dir = tmp_path / "empty-data"
    assert not empty_dir.exists() or [p for p in empty_dir.rglob("*") if p.is_file()] == []
    r = restore(empty_config, empty_db, str(good), "--json")  # the good one goes in place, nothing kept
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["previous_kept"] is None and report["replaced_existing"] is False
    assert slot_name(empty_db) == "Before"
