"""Migrations with history: applied once each, in their own transaction, under a lock; a
database made by the pre-migration schema.sql is adopted without losing a row; a newer one is
refused."""
from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from pathlib import Path

import psycopg2
import pytest

from photoslot import db as dbmod
from photoslot import jobs, schema, slots, templates
from photoslot import settings as live_settings
from photoslot.clock import ManualClock
from photoslot.context import AppContext
from photoslot.media import MediaStore
from tests.conftest import FIXTURES

MIGRATIONS = Path(schema.__file__).parent / "migrations"


def run_sql(dsn: str, sql: str, params=None) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def history(dsn: str) -> list[tuple]:
    return run_sql(dsn, "SELECT version, name, how FROM schema_migrations ORDER BY version")


def make_pre_migration_database(dsn: str) -> None:
    """What every photoslot before migrations did at start: run the idempotent schema.sql under
    the schema lock. 0001_baseline.sql is that file, kept verbatim (its checksum is pinned)."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtext('photoslot-schema'))")
            cur.execute((MIGRATIONS / "0001_baseline.sql").read_text(encoding="utf-8"))
            cur.execute("SELECT pg_advisory_unlock(hashtext('photoslot-schema'))")
    finally:
        conn.close()


async def fill_studio(cfg, dsn: str, media_root: Path) -> None:
    """A studio's worth of rows in every table, written by photoslot's own code where it has one."""
    clock = ManualClock()
    database = await dbmod.connect(dsn, pool_size=2, apply_schema=False)  # the schema as it is, untouched
    ctx = AppContext(cfg=cfg, clock=clock, db=database, media=MediaStore(media_root))
    ctx.media.ensure()
    try:
        await live_settings.update(database, cfg, clock, actor="serg", source="http", sync_response_seconds=50,
                                   ingest_password="booth-secret-1", provider_keys={"gemini": "stored-gemini-key"})
        style = await templates.register(ctx, data=(FIXTURES / "template_style.jpg").read_bytes(), label="style",
                                         actor="igor", source="cli")
        face = await templates.register(ctx, data=(FIXTURES / "template_face.png").read_bytes(), label="face",
                                        actor="igor", source="cli")
        await slots.configure(database, clock, "slot-001", actor="serg", source="cli", name="Booth A",
                              provider_id="gemini", operation_id="image_edit", settings_json={"prompt": "sepia"})
        await slots.configure(database, clock, "slot-002", actor="serg", source="http", provider_id="gemini",
                              operation_id="style_transfer",
                              settings_json={"prompt": "like this", "templates": {"style": style["id"]}})
        await slots.configure(database, clock, "slot-003", actor="igor", source="cli", provider_id="turbotext",
                              operation_id="identity_transfer", settings_json={"templates": {"face": face["id"]}},
                              enabled=False)
        slot_rows = {s["id"]: s for s in await slots.list_all(database)}
        now = clock.now() - dt.timedelta(hours=2)
        for i, outcome in enumerate(["succeeded", "succeeded", "timeout", "provider_error", "pending"]):
            job_id = jobs.new_job_id()
            slot = slot_rows["slot-001" if i % 2 == 0 else "slot-002"]
            upload = ctx.media.upload_path(job_id, "image/jpeg")
            upload.write_bytes(b"upload")
            created = now + dt.timedelta(minutes=i)
            # The job row as the photoslot of that schema wrote it (today's insert names later columns).
            run_sql(dsn,
                    "INSERT INTO jobs (id, slot_id, provider_id, operation_id, slot_settings, input_metadata, upload_path,"
                    " upload_mime, upload_size_bytes, expires_at, created_at, updated_at) VALUES (%(id)s, %(slot_id)s,"
                    " %(provider_id)s, %(operation_id)s, %(slot_settings)s, %(input_metadata)s, %(upload_path)s,"
                    " 'image/jpeg', 6, %(expires_at)s, %(now)s, %(now)s)",
                    dict(id=str(job_id), slot_id=slot["id"], provider_id=slot["provider_id"],
                         operation_id=slot["operation_id"], slot_settings=json.dumps(dict(slot["settings_json"] or {})),
                         input_metadata=json.dumps({"hash": f"h{i}"}), upload_path=str(upload),
                         expires_at=created + dt.timedelta(seconds=48), now=created))
            done = created + dt.timedelta(seconds=5 + i)
            if outcome == "succeeded":
                result = ctx.media.result_path(job_id, "image/jpeg")
                result.write_bytes(b"result")
                await jobs.record_provider(database, job_id=job_id, now=done, requests=1, tokens=1290, provider_ms=900)
                await jobs.finalize_success(database, ctx.media, job_id=job_id, now=done, result_path=str(result),
                                            mime="image/jpeg", size=6, checksum="c" * 64, default_retention_hours=72,
                                            tokens=1290, provider_ms=900)
                await jobs.record_answer(database, job_id=job_id, answered_ms=5000 + i)
            elif outcome != "pending":
                await jobs.finalize_failure(database, ctx.media, job_id=job_id, now=done, reason=outcome,
                                            detail=f"drill {outcome}")
        # The tables no domain call above reaches, one row each.
        later = clock.now()
        await database.execute("audit_insert", now=later, actor="os:root", source="cli", action="users.reset",
                               target="igor", details={"password": "<changed>"})
        run_sql(dsn, """
            INSERT INTO media_objects (id, job_id, kind, file_path, owns_file, mime, size_bytes, expires_at, created_at)
            VALUES (gen_random_uuid(), NULL, 'template', %(p)s, false, 'image/jpeg', 10, %(t)s, %(t)s);
            INSERT INTO provider_request_counts VALUES ('gemini', 'day', date_trunc('day', %(t)s), 3);
            INSERT INTO login_attempts (key, at) VALUES ('user:serg', %(t)s);
            INSERT INTO purge_requests (id, scope, requested_by, requested_at, expires_cutoff)
            VALUES (gen_random_uuid(), 'full', 'serg', %(t)s, %(t)s);
            INSERT INTO alert_state (name, active, changed_at, checked_at) VALUES ('timeout_ratio', true, %(t)s, %(t)s);
        """, {"p": style["id"], "t": later})
    finally:
        await database.close()


def table_columns(dsn: str) -> dict[str, list[str]]:
    rows = run_sql(dsn, """
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name NOT IN ('schema_meta', 'schema_migrations')
        ORDER BY table_name, ordinal_position""")
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def fingerprint(dsn: str, columns: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """(row count, md5 of every row's text) per table, over the given columns only, so columns a
    migration adds do not count while every value that was there must still be there."""
    out = {}
    for table, cols in columns.items():
        row_text = "ROW(" + ", ".join(f'"{c}"' for c in cols) + ")::text"
        out[table] = run_sql(dsn, f"""
            SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), ''))
            FROM (SELECT {row_text} AS r FROM "{table}") t""")[0]
    return out


def test_an_empty_database_gets_every_migration_once_in_order(scratch_db):
    report = schema.migrate_dsn(scratch_db)
    latest = schema.latest_version()
    assert report == {"from_version": 0, "to_version": latest, "adopted_baseline": False,
                      "applied": [m.file for m in schema.available()]}
    assert [(v, how) for v, _, how in history(scratch_db)] == [(v, "applied") for v in range(1, latest + 1)]
    assert run_sql(scratch_db, "SELECT version FROM schema_meta")[0][0] == latest
    again = schema.migrate_dsn(scratch_db)
    assert again["applied"] == [] and again["to_version"] == latest
    assert len(history(scratch_db)) == latest
    assert schema.state_dsn(scratch_db)["up_to_date"]


async def test_a_studio_made_by_the_pre_migration_schema_is_adopted_without_losing_a_row(scratch_db, make_cfg, tmp_path):
    make_pre_migration_database(scratch_db)
    assert run_sql(scratch_db, "SELECT version FROM schema_meta") == [(1,)]
    assert run_sql(scratch_db, "SELECT to_regclass('schema_migrations')") == [(None,)]
    st = schema.state_dsn(scratch_db)
    assert st["pre_migration_schema"] and not st["up_to_date"]
    cfg = make_cfg()
    await fill_studio(cfg, scratch_db, tmp_path / "media")
    columns = table_columns(scratch_db)
    before = fingerprint(scratch_db, columns)
    assert all(count > 0 for count, _ in before.values()), before  # every table holds something

    report = schema.migrate_dsn(scratch_db)  # what `serve`, `work` or `photoslot migrate` now do at start

    assert report["adopted_baseline"] is True and report["from_version"] == 1
    assert report["to_version"] == schema.latest_version()
    assert history(scratch_db)[0] == (1, "baseline", "adopted")
    assert fingerprint(scratch_db, columns) == before
    assert schema.state_dsn(scratch_db)["up_to_date"]
    # and photoslot reads it as before: the studio's slots, settings and stats are all there
    database = await dbmod.connect(scratch_db, pool_size=2)
    try:
        by_id = {s["id"]: s for s in await slots.list_all(database)}
        assert by_id["slot-001"]["name"] == "Booth A" and not by_id["slot-003"]["enabled"]
        assert (await live_settings.load(database, cfg)).sync_response_seconds == 50
        assert await live_settings.provider_api_key(database, cfg, "gemini") == "stored-gemini-key"
    finally:
        await database.close()


async def test_an_upgrade_through_a_new_migration_keeps_every_value(scratch_db, make_cfg, tmp_path):
    make_pre_migration_database(scratch_db)
    await fill_studio(make_cfg(), scratch_db, tmp_path / "media")
    columns = table_columns(scratch_db)
    before = fingerprint(scratch_db, columns)
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    nxt = schema.latest_version() + 1
    (folder / f"{nxt:04d}_booth_notes.sql").write_text(
        "ALTER TABLE slots ADD COLUMN booth_note text NOT NULL DEFAULT '';\n"
        "ALTER TABLE jobs ADD COLUMN booth_note text;\n"
        "CREATE TABLE booth_notes (id bigserial PRIMARY KEY, slot_id text REFERENCES slots (id), note text);\n"
        "INSERT INTO booth_notes (slot_id, note) SELECT id, name FROM slots WHERE name <> '';\n")

    report = schema.migrate_dsn(scratch_db, folder=folder)

    assert report["adopted_baseline"] and report["applied"][-1] == f"{nxt:04d}_booth_notes.sql"
    assert fingerprint(scratch_db, columns) == before
    assert run_sql(scratch_db, "SELECT slot_id, note FROM booth_notes") == [("slot-001", "Booth A")]
    assert [h[0] for h in history(scratch_db)][-1] == nxt
    assert run_sql(scratch_db, "SELECT version FROM schema_meta")[0][0] == nxt


def test_a_failing_migration_leaves_nothing_behind_and_the_next_run_resumes(scratch_db, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    good, bad = schema.latest_version() + 1, schema.latest_version() + 2
    (folder / f"{good:04d}_good.sql").write_text("CREATE TABLE drill_good (id int);")
    (folder / f"{bad:04d}_bad.sql").write_text("CREATE TABLE drill_half (id int);\nSELEKT broken;")

    with pytest.raises(schema.SchemaError, match=f"migration {bad:04d}_bad.sql failed and was rolled back"):
        schema.migrate_dsn(scratch_db, folder=folder)

    assert [h[0] for h in history(scratch_db)][-1] == good
    assert run_sql(scratch_db, "SELECT to_regclass('drill_good') IS NOT NULL, to_regclass('drill_half') IS NULL") \
        == [(True, True)]
    (folder / f"{bad:04d}_bad.sql").write_text("CREATE TABLE drill_half (id int);")
    assert schema.migrate_dsn(scratch_db, folder=folder)["applied"] == [f"{bad:04d}_bad.sql"]


def test_a_database_a_newer_photoslot_migrated_is_refused(scratch_db, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    newer = schema.latest_version() + 1
    (folder / f"{newer:04d}_from_the_future.sql").write_text("CREATE TABLE future (id int);")
    schema.migrate_dsn(scratch_db, folder=folder)  # the newer photoslot ran here

    with pytest.raises(schema.SchemaTooNew, match=f"schema is at version {newer}, newer than this photoslot knows"):
        schema.migrate_dsn(scratch_db)
    st = schema.state_dsn(scratch_db)
    assert st["unknown"] == [newer] and not st["up_to_date"]


async def test_connecting_to_a_newer_database_fails_before_any_work(scratch_db, tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / f"{schema.latest_version() + 1:04d}_from_the_future.sql").write_text("SELECT 1;")
    schema.migrate_dsn(scratch_db, folder=folder)
    with pytest.raises(schema.SchemaTooNew):
        await dbmod.connect(scratch_db, pool_size=1)  # every process starts here


def test_processes_starting_together_apply_each_migration_once(scratch_db):
    reports, errors = [], []
    barrier = threading.Barrier(3)

    def start():
        try:
            barrier.wait()
            reports.append(schema.migrate_dsn(scratch_db))
        except Exception as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    applied = [name for r in reports for name in r["applied"]]
    assert sorted(applied) == sorted(m.file for m in schema.available())  # each once, by one of them
    assert len(history(scratch_db)) == schema.latest_version()


def test_reset_database_keeps_working_on_a_migrated_database(pg_dsn):
    from tests.conftest import reset_database

    reset_database(pg_dsn)
    assert schema.state_dsn(pg_dsn)["up_to_date"]
    assert run_sql(pg_dsn, "SELECT count(*) FROM slots") == [(15,)]

