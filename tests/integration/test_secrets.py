"""Secrets at rest: provider keys encrypted in PostgreSQL with a key that lives only in the data dir;
plain-text keys of an older version encrypted at start; `secrets rotate`; first-start passwords."""
from __future__ import annotations

import json
import logging
import stat
import sys

import psycopg2
import pytest

from photoslot import audit, secrets
from photoslot import settings as live_settings
from photoslot.config import load_config
from photoslot.context import AppContext
from tests import logscan
from tests.conftest import EMULATOR_KEY, INGEST_PASSWORD
from tests.integration.studio import Studio

pytestmark = pytest.mark.usefixtures("clean_state")
POSIX = sys.platform != "win32"
SECRET_KEY = "gm-SECRET-key-0123456789"


def _database_dump(dsn: str) -> str:
    """Everything a copy of the database would show about settings and the audit trail."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT key, value::text FROM settings UNION ALL SELECT action, details::text FROM audit_log")
            return json.dumps(cur.fetchall())
    finally:
        conn.close()


async def _store_key(s, value=SECRET_KEY):
    await live_settings.update(s.ctx.db, s.cfg, s.clock, actor="admin:serg", source="http",
                               provider_keys={"gemini": value})


async def test_a_stored_provider_key_is_encrypted_and_the_database_alone_reveals_it_not(make_cfg, pg_dsn):
    logscan.secret(SECRET_KEY)
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _store_key(s)
        assert SECRET_KEY not in _database_dump(pg_dsn)
        row = await s.ctx.db.fetchone("secret_settings_for_update", prefix="provider_key.")
        assert set(row["value"]) == {"encrypted"}
        assert await live_settings.provider_api_key(s.ctx.db, s.cfg, "gemini") == SECRET_KEY
        key_file = secrets.key_path(s.cfg)
        if POSIX:
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        assert SECRET_KEY not in key_file.read_text()


async def test_plain_text_keys_of_an_older_version_are_encrypted_at_start(make_cfg, pg_dsn):
    logscan.secret(SECRET_KEY)
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        # what an older photoslot stored
        await s.ctx.db.execute("setting_upsert", key="provider_key.turbotext", value={"value": SECRET_KEY},
                               now=s.clock.now(), actor="admin:igor")
        assert await live_settings.provider_api_key(s.ctx.db, s.cfg, "turbotext") == SECRET_KEY  # still usable
        assert await secrets.encrypt_plaintext(s.ctx) == 1
        assert await secrets.encrypt_plaintext(s.ctx) == 0  # once
        assert SECRET_KEY not in _database_dump(pg_dsn)
        assert await live_settings.provider_api_key(s.ctx.db, s.cfg, "turbotext") == SECRET_KEY
        view = live_settings.public_view(await live_settings.load(s.ctx.db, s.cfg), s.cfg)
        assert view["provider_keys"]["turbotext"]["updated_by"] == "admin:igor"  # who set it stays
        entry = (await audit.entries(s.ctx.db, action="secrets.encrypt_stored"))[0]
        assert entry["details"] == {"encrypted": 1}


async def test_rotate_re_encrypts_every_stored_key_and_drops_the_old_key(make_cfg, pg_dsn):
    logscan.secret(SECRET_KEY)
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _store_key(s)
        await live_settings.update(s.ctx.db, s.cfg, s.clock, actor="t", source="cli",
                                   provider_keys={"turbotext": "tt-" + SECRET_KEY})
        old_key = secrets.key_path(s.cfg).read_text()
        before = {r["key"]: r["value"]["encrypted"]
                  for r in await s.ctx.db.fetchall("secret_settings_for_update", prefix="provider_key.")}
        report = await secrets.rotate(s.ctx, actor="os:tester", source="cli")
        assert report["re_encrypted"] == 2 and report["old_keys_dropped"] == 1
        new_key = secrets.key_path(s.cfg).read_text()
        assert new_key != old_key and len(new_key.split()) == 1
        after = {r["key"]: r["value"]["encrypted"]
                 for r in await s.ctx.db.fetchall("secret_settings_for_update", prefix="provider_key.")}
        assert all(after[k] != before[k] for k in before)
        assert await live_settings.provider_api_key(s.ctx.db, s.cfg, "gemini") == SECRET_KEY
        assert await live_settings.provider_api_key(s.ctx.db, s.cfg, "turbotext") == "tt-" + SECRET_KEY
        entry = (await audit.entries(s.ctx.db, action="secrets.rotate"))[0]
        assert entry["actor"] == "os:tester" and entry["details"]["re_encrypted"] == 2
        dump = _database_dump(pg_dsn)
        assert old_key.strip() not in dump and new_key.strip() not in dump  # never a key in the audit
        if POSIX:
            assert stat.S_IMODE(secrets.key_path(s.cfg).stat().st_mode) == 0o600


async def test_rotate_re_keys_the_ingest_password_and_booths_keep_shooting(make_cfg, pg_dsn, photo_bytes):
    async with Studio(make_cfg(ingest__sync_response_seconds=10), pg_dsn) as s:
        await s.set_password()
        await s.configure("slot-001")
        before = (await s.ctx.db.fetchone("setting_get", key="ingest_password"))["value"]
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200
        report = await secrets.rotate(s.ctx, actor="os:tester", source="cli")
        assert report["ingest_password"] is True
        after = (await s.ctx.db.fetchone("setting_get", key="ingest_password"))["value"]
        assert after["kid"] != before["kid"] and after["hash"] != before["hash"] and after["sealed"] != before["sealed"]
        assert secrets.ingest_password_from(s.cfg, after) == INGEST_PASSWORD
        assert (await s.ingest("slot-001", photo_bytes))[0] == 200  # the booth's password, keyed anew
        assert (await s.ingest("slot-001", photo_bytes, password="not-the-password"))[0] == 401
        entry = (await audit.entries(s.ctx.db, action="secrets.rotate"))[0]
        assert entry["details"]["ingest_password"] is True


async def test_a_data_dir_without_the_key_reports_it_and_falls_back_to_the_config(make_cfg, pg_dsn, tmp_path, caplog):
    logscan.secret(SECRET_KEY)
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await _store_key(s)
    # a worker host with a data dir of its own and no copy of the key file
    other = load_config(make_cfg().source, environ={})
    other.set("data_dir", str(tmp_path / "other-host"))
    caplog.set_level(logging.ERROR, logger="photoslot.settings")
    ctx = await AppContext.open(other, dsn=pg_dsn)
    try:
        live_settings._unreadable_reported.clear()
        assert await live_settings.provider_api_key(ctx.db, other, "gemini") == EMULATOR_KEY  # the config's
        assert await live_settings.provider_api_key(ctx.db, other, "gemini") == EMULATOR_KEY
    finally:
        await ctx.close()
    reports = [r for r in caplog.records if "provider_key_unreadable" in r.getMessage()]
    assert len(reports) == 1 and "settings.key" in reports[0].getMessage()  # once, naming the file
    assert not secrets.key_path(other).exists()  # reading never invents a key


async def test_a_rotation_that_cannot_read_a_value_changes_nothing(make_cfg, pg_dsn):
    logscan.secret(SECRET_KEY)
    async with Studio(make_cfg(), pg_dsn, workers=0) as s:
        await s.ctx.db.execute("setting_upsert", key="provider_key.gemini", value={"encrypted": "gAAAAAbogus"},
                               now=s.clock.now(), actor="t")
        secrets.ensure_key(s.cfg)
        before = secrets.key_path(s.cfg).read_text()
        with pytest.raises(secrets.SecretUnreadable, match="provider_key.gemini"):
            await secrets.rotate(s.ctx, actor="t", source="cli")
        assert secrets.key_path(s.cfg).read_text() == before
        assert await audit.entries(s.ctx.db, action="secrets.rotate") == []


def test_first_start_passwords_go_to_a_private_file_when_there_is_no_terminal(make_cfg, caplog):
    cfg = make_cfg()
    caplog.set_level(logging.INFO, logger="photoslot.secrets")
    printed = []
    lines = ["admin serg password (shown once …): pw-serg-123", "admin igor password (shown once …): pw-igor-456"]
    for line in lines:
        logscan.secret(line.rsplit(" ", 1)[-1])
    path = secrets.deliver_first_start(cfg, lines, out=printed.append, interactive=False)
    assert path == cfg.data_dir / "secrets" / "first-start-passwords.txt"
    assert path.read_text().splitlines() == lines
    if POSIX:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert printed == [f"first-start passwords written to {path} (readable by this user only; delete it once noted)"]
    logged = caplog.text
    assert str(path) in logged and "pw-serg-123" not in logged and "pw-igor-456" not in logged
    # on a terminal they are shown, and nothing is written
    shown = []
    assert secrets.deliver_first_start(cfg, ["x: 1"], out=shown.append, interactive=True) is None
    assert shown == ["x: 1"] and path.read_text().splitlines() == lines
    assert secrets.deliver_first_start(cfg, [], out=shown.append, interactive=False) is None
