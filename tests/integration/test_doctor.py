"""`photoslot doctor`: every ✗ provoked for real — a taken port, a read-only data dir, a wrong key
at the emulator, an expired certificate, a missing template file, no database — each with a fix."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from photoslot import doctor, schema, slots, templates
from photoslot import settings as live_settings
from photoslot.clock import ManualClock
from photoslot.context import AppContext
from tests.conftest import EMULATOR_KEY, FIXTURES, emulator_control, emulator_requests, free_port, write_config
from tests.integration.studio import Studio


@pytest.fixture
def studio_cfg(tmp_path, pg_dsn, emulator, clean_state):
    """Write a config (overrides as section__key=value) and return its path."""

    def make(dsn: str | None = None, **overrides) -> Path:
        overrides.setdefault("port", free_port())
        return write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=dsn or pg_dsn,
                            emulator_url=emulator.base_url, **overrides)

    return make


async def run(path: Path) -> dict[str, doctor.Check]:
    return {c.name: c for c in await doctor.run(str(path), environ={})}


async def ready_studio(path: Path, *, turbotext: bool = True, password: bool = True) -> None:
    """slot-001 on Gemini, slot-002 on Turbotext with a style template, the ingest password set."""
    from photoslot.config import load_config

    cfg = load_config(path, environ={})
    ctx = await AppContext.open(cfg, clock=ManualClock())
    try:
        await slots.configure(ctx.db, ctx.clock, "slot-001", actor="test", source="test", provider_id="gemini",
                              operation_id="image_edit", settings_json={"prompt": "sepia"})
        if turbotext:
            style = await templates.register(ctx, data=(FIXTURES / "template_style.jpg").read_bytes(), label="s",
                                             actor="test", source="test")
            await slots.configure(ctx.db, ctx.clock, "slot-002", actor="test", source="test",
                                  provider_id="turbotext", operation_id="style_transfer",
                                  settings_json={"templates": {"style": style["id"]}})
        if password:
            await live_settings.update(ctx.db, cfg, ctx.clock, actor="test", source="test",
                                       ingest_password="booth-secret-1")
    finally:
        await ctx.close()


def failed(checks: dict[str, doctor.Check]) -> dict[str, str]:
    return {name: c.detail for name, c in checks.items() if c.status == doctor.FAIL}


async def test_a_ready_studio_passes_every_check(studio_cfg, emulator):
    path = studio_cfg()
    await ready_studio(path)
    checks = await run(path)
    assert failed(checks) == {}
    assert {"config", "data_dir", "disk", "database", "schema", "port", "ingest_password", "provider gemini",
            "provider turbotext", "tls", "clock", "slot slot-001", "slot slot-002"} <= set(checks)
    assert "key accepted" in checks["provider gemini"].detail
    assert "templates: style" in checks["slot slot-002"].detail
    seen = {(r["provider"], r.get("method"), r.get("do")) for r in await emulator_requests(emulator)}
    # the cheap calls: model metadata and a status poll — no image generated, nothing billed
    assert seen == {("gemini", "models.get", None), ("turbotext", "generate_image2image", "get_result")}


async def test_a_port_taken_by_another_program_fails_and_one_held_by_photoslot_passes(studio_cfg, make_cfg, pg_dsn):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        check = (await run(studio_cfg(port=port)))["port"]
    assert check.status == doctor.FAIL and "taken by another program" in check.detail
    assert "server.port" in check.fix

    async with Studio(make_cfg(), pg_dsn, workers=0) as studio:
        port = int(studio.base_url.rsplit(":", 1)[1])
        check = (await run(studio_cfg(port=port)))["port"]
    assert check.status == doctor.OK and "held by a running photoslot" in check.detail


@contextlib.contextmanager
def read_only(folder: Path):
    """The folder made read-only for real, for whoever runs the suite (root ignores file modes)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.name == "nt":
        pytest.skip("read-only folders are provoked with POSIX modes or chattr")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = lambda: folder.chmod(0o755)  # noqa: E731
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        undo = lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)  # noqa: E731
    else:
        pytest.skip("running as root without chattr +i: no way to make a folder read-only here")
    try:
        with pytest.raises(OSError):
            (folder / "probe").write_bytes(b"x")
        yield
    finally:
        undo()


async def test_a_read_only_data_dir_fails_with_the_fix(studio_cfg, tmp_path):
    path = studio_cfg()
    await ready_studio(path, turbotext=False)
    with read_only(tmp_path / "data"):
        checks = await run(path)
    assert checks["data_dir"].status == doctor.FAIL
    assert str(tmp_path / "data") in checks["data_dir"].detail
    assert "write access" in checks["data_dir"].fix
    assert checks["database"].status == doctor.OK  # the other checks still ran


async def test_a_wrong_key_at_the_emulator_fails_for_its_provider(studio_cfg, pg_dsn):
    path = studio_cfg(providers__gemini__api_key="wrong-gemini-key", providers__turbotext__api_key="wrong-tt-key")
    await ready_studio(path)
    checks = await run(path)
    assert checks["provider gemini"].status == doctor.FAIL
    assert "Gemini refused the key: HTTP 400" in checks["provider gemini"].detail
    assert checks["provider turbotext"].status == doctor.FAIL
    assert "Turbotext refused the key: HTTP 401" in checks["provider turbotext"].detail
    assert "settings provider-key" in checks["provider gemini"].fix

    # a key stored over the admin API wins over the file's, as it does for the workers
    from photoslot.config import load_config

    cfg = load_config(path, environ={})
    ctx = await AppContext.open(cfg)
    try:
        await live_settings.update(ctx.db, cfg, ctx.clock, actor="test", source="test",
                                   provider_keys={"gemini": EMULATOR_KEY})
    finally:
        await ctx.close()
    checks = await run(path)
    assert checks["provider gemini"].status == doctor.OK
    assert checks["provider turbotext"].status == doctor.FAIL


async def test_a_provider_without_a_key_fails_only_when_an_enabled_slot_uses_it(studio_cfg, pg_dsn):
    from tests.conftest import reset_database

    path = studio_cfg(providers__turbotext__api_key=None)
    await ready_studio(path)
    checks = await run(path)
    assert "no API key" in checks["provider turbotext"].detail and "slot-002" in checks["provider turbotext"].detail
    assert "TURBOTEXT_API_KEY" in checks["provider turbotext"].fix
    reset_database(pg_dsn)
    await ready_studio(path, turbotext=False)
    check = (await run(path))["provider turbotext"]
    assert check.status == doctor.OK and "no enabled slot uses it" in check.detail


def make_certificate(folder: Path, *, not_before: dt.datetime, not_after: dt.datetime) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "studio.example")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize("start_days, end_days, status, needle", [
    (-90, -1, doctor.FAIL, "expired on"),
    (-80, 3, doctor.FAIL, "in 3.0 days"),
    (2, 90, doctor.FAIL, "is not valid before"),
    (-1, 90, doctor.OK, "(90 days left)"),
])
async def test_the_certificate_is_read_and_its_days_counted(studio_cfg, tmp_path, start_days, end_days, status, needle):
    now = dt.datetime.now(dt.timezone.utc)
    cert, key = make_certificate(tmp_path / "tls", not_before=now + dt.timedelta(days=start_days),
                                 not_after=now + dt.timedelta(days=end_days, minutes=30))
    check = (await run(studio_cfg(server__tls_cert_file=str(cert), server__tls_key_file=str(key))))["tls"]
    assert check.status == status and needle in check.detail, check
    assert "CN=studio.example" in check.detail


async def test_an_unreadable_or_mismatched_certificate_fails(studio_cfg, tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    cert, _ = make_certificate(tmp_path / "a", not_before=now, not_after=now + dt.timedelta(days=90))
    _, other_key = make_certificate(tmp_path / "b", not_before=now, not_after=now + dt.timedelta(days=90))
    check = (await run(studio_cfg(server__tls_cert_file=str(cert), server__tls_key_file=str(other_key))))["tls"]
    assert check.status == doctor.FAIL and "cannot load TLS certificate" in check.detail
    check = (await run(studio_cfg(server__tls_cert_file=str(tmp_path / "nope.pem"),
                                  server__tls_key_file=str(other_key))))["tls"]
    assert check.status == doctor.FAIL and "readable PEM" in check.fix


async def test_no_password_and_no_enabled_slot_mean_not_ready(studio_cfg):
    checks = await run(studio_cfg())
    assert checks["ingest_password"].status == doctor.FAIL and "--ingest-password" in checks["ingest_password"].fix
    assert checks["slots"].status == doctor.FAIL and "no slot is enabled" in checks["slots"].detail


async def test_a_template_file_gone_from_disk_fails_its_slot(studio_cfg):
    path = studio_cfg()
    await ready_studio(path)
    from photoslot.config import load_config

    cfg = load_config(path, environ={})
    ctx = await AppContext.open(cfg)
    try:
        for t in await templates.list_all(ctx.db):
            Path((await templates.get(ctx.db, t["id"]))["file_path"]).unlink()
    finally:
        await ctx.close()
    checks = await run(path)
    assert checks["slot slot-002"].status == doctor.FAIL and "template file missing: style" in checks["slot slot-002"].detail
    assert checks["slot slot-001"].status == doctor.OK


async def test_an_unreachable_database_fails_and_what_needs_it_is_skipped(studio_cfg):
    checks = await run(studio_cfg(dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/photoslot?connect_timeout=3"))
    assert checks["database"].status == doctor.FAIL and "cannot connect" in checks["database"].detail
    assert "PHOTOSLOT_DSN" in checks["database"].fix
    for name in ("schema", "ingest_password", "providers", "clock", "slots"):
        assert checks[name].status == doctor.SKIPPED
    assert checks["port"].status == doctor.OK and checks["config"].status == doctor.OK


async def test_an_empty_or_a_newer_schema_fails(studio_cfg, scratch_db, tmp_path):
    path = studio_cfg(dsn=scratch_db)
    checks = await run(path)
    assert "the database is empty" in checks["schema"].detail and "photoslot migrate" in checks["schema"].fix
    assert checks["slots"].status == doctor.SKIPPED

    folder = tmp_path / "migrations"
    shutil.copytree(Path(schema.__file__).parent / "migrations", folder)
    (folder / f"{schema.latest_version() + 1:04d}_future.sql").write_text("SELECT 1;")
    schema.migrate_dsn(scratch_db, folder=folder)
    checks = await run(path)
    assert checks["schema"].status == doctor.FAIL and "newer than this photoslot knows" in checks["schema"].detail


async def test_a_disk_fuller_than_the_alert_threshold_fails(studio_cfg):
    check = (await run(studio_cfg(alerts__media_disk_used_percent=0)))["disk"]
    assert check.status == doctor.FAIL and "(alert at 0%)" in check.detail and "photoslot sweep" in check.fix


async def test_a_config_that_does_not_parse_is_the_only_answer(tmp_path):
    path = tmp_path / "photoslot.yaml"
    path.write_text("server: {prot: 8080}\n")
    checks = await doctor.run(str(path), environ={})
    assert [(c.name, c.status) for c in checks] == [("config", doctor.FAIL)]
    assert "unknown config key: server.prot" in checks[0].detail
    path.write_text("server: {port: 8080}\n")
    checks = await doctor.run(str(path), environ={"PHOTOSLOT_SERVER_PROT": "8081"})
    assert [(c.name, c.status) for c in checks] == [("config", doctor.FAIL)]
    assert "did you mean PHOTOSLOT_SERVER_PORT" in checks[0].detail


# ---------------------------------------------------------------- what only the address and the names tell

@pytest.mark.parametrize("public, turbotext_url, status", [
    ("http://192.168.1.20:8080", "https://www.turbotext.ru", doctor.FAIL),  # a LAN address: unreachable for Turbotext
    ("http://127.0.0.1:8080", "https://www.turbotext.ru", doctor.FAIL),
    ("http://10.0.0.5", "https://www.turbotext.ru", doctor.FAIL),
    ("http://100.64.3.4", "https://www.turbotext.ru", doctor.FAIL),  # carrier-grade NAT
    ("http://photobooth.local:8080", "https://www.turbotext.ru", doctor.FAIL),
    (None, "https://www.turbotext.ru", doctor.FAIL),  # unset: photoslot falls back to 127.0.0.1
    ("https://booth.example.com", "https://www.turbotext.ru", doctor.OK),
    ("https://203.0.113.7", "https://www.turbotext.ru", doctor.FAIL),  # TEST-NET: reserved, not the internet
    ("http://127.0.0.1:8080", None, doctor.OK),  # a rehearsal: the emulator on this PC fetches from loopback fine
])
async def test_a_turbotext_slot_with_a_public_address_turbotext_cannot_reach_fails_with_the_fix(
        studio_cfg, emulator, public, turbotext_url, status):
    overrides = {"server__public_base_url": public}
    if turbotext_url:  # the real Turbotext's address; no key, so nothing is called
        overrides.update(providers__turbotext__base_url=turbotext_url, providers__turbotext__api_key=None)
    path = studio_cfg(**overrides)
    await ready_studio(path)
    check = (await run(path))["public address"]
    assert check.status == status, check
    if status == doctor.FAIL:
        assert "Turbotext's servers cannot fetch the photos of slot-002" in check.detail
        assert "server.public_base_url" in check.fix and "doctor --live" in check.fix


async def test_an_unknown_gemini_model_name_fails_offline_naming_the_ones_there_are(studio_cfg):
    path = studio_cfg(providers__gemini__model="gemini-2.5-flash-image-preview")  # retired
    await ready_studio(path, turbotext=False)
    checks = await run(path)
    assert checks["gemini models"].status == doctor.FAIL
    assert "'gemini-2.5-flash-image-preview' (used by slot-001)" in checks["gemini models"].detail
    assert "gemini-3-pro-image-preview" in checks["gemini models"].fix
    # the key check asks Google for the model's metadata: 404 too
    assert "knows no model" in checks["provider gemini"].detail


# ---------------------------------------------------------------- doctor --live

async def live_studio(studio_cfg, make_cfg, pg_dsn, *, serve: bool = True, **overrides):
    """The doctor's config, and (serve=True) a running studio on the same database answering the
    public links doctor --live registers."""
    if not serve:
        return studio_cfg(server__public_base_url=f"http://127.0.0.1:{free_port()}", **overrides), None
    s = Studio(make_cfg(), pg_dsn, workers=0)
    await s.__aenter__()
    return studio_cfg(server__public_base_url=s.base_url, **overrides), s


async def test_live_checks_draw_one_image_per_gemini_model_and_send_turbotext_a_photo_through_the_public_link(
        studio_cfg, make_cfg, pg_dsn, emulator, tmp_path):
    path, s = await live_studio(studio_cfg, make_cfg, pg_dsn)
    try:
        await ready_studio(path)
        from photoslot.config import load_config

        cfg = load_config(path, environ={})
        ctx = await AppContext.open(cfg, clock=s.clock)
        try:
            await slots.configure(ctx.db, ctx.clock, "slot-003", actor="test", source="test", provider_id="gemini",
                                  operation_id="image_edit",
                                  settings_json={"prompt": "x", "params": {"model": "gemini-3-pro-image-preview"}})
        finally:
            await ctx.close()
        checks = {c.name: c for c in await doctor.run(str(path), environ={}, live=True)}
    finally:
        await s.__aexit__(None, None, None)
    assert failed(checks) == {}
    assert "gemini-2.5-flash-image drew a 1024×1024 image" in checks["live gemini gemini-2.5-flash-image"].detail
    assert "gemini-3-pro-image-preview drew a 1024×1024 image" in checks["live gemini gemini-3-pro-image-preview"].detail
    assert "Turbotext fetched the test photo from" in checks["live turbotext"].detail
    assert "999 photo(s) left on the tariff" in checks["live turbotext"].detail
    calls = await emulator_requests(emulator)
    assert sorted(c["model"] for c in calls if c.get("method") == "generateContent") == [
        "gemini-2.5-flash-image", "gemini-3-pro-image-preview"]
    assert len([c for c in calls if c.get("do") == "create_queue"]) == 1
    kept = sorted((tmp_path / "data" / "doctor").iterdir())
    assert len(kept) == 3
    for file in kept:
        text = file.read_text(encoding="utf-8")
        assert EMULATOR_KEY not in text
        assert "characters of base64 image data removed" in text or "turbotext" in file.name
        assert max(len(w) for w in text.split()) < 300  # no image bytes left in any field


async def test_live_gemini_catches_the_key_without_quota_the_metadata_check_lets_through(
        studio_cfg, make_cfg, pg_dsn, emulator):
    await emulator_control(emulator, provider="gemini", no_quota=True)
    path, s = await live_studio(studio_cfg, make_cfg, pg_dsn)
    try:
        await ready_studio(path, turbotext=False)
        checks = {c.name: c for c in await doctor.run(str(path), environ={}, live=True)}
    finally:
        await s.__aexit__(None, None, None)
    assert checks["provider gemini"].status == doctor.OK  # the model's metadata needs no billing
    live = checks["live gemini gemini-2.5-flash-image"]
    assert live.status == doctor.FAIL
    assert "this key's project has no quota for gemini-2.5-flash-image (billing not enabled?)" in live.detail
    assert "billing" in live.fix and "answer kept in" in live.detail


async def test_live_turbotext_says_when_no_photoslot_serves_the_public_link_and_spends_nothing(
        studio_cfg, make_cfg, pg_dsn, emulator):
    path, _ = await live_studio(studio_cfg, make_cfg, pg_dsn, serve=False)
    await ready_studio(path)
    checks = {c.name: c for c in await doctor.run(str(path), environ={}, live=True)}
    live = checks["live turbotext"]
    assert live.status == doctor.FAIL and "does not serve its public link" in live.detail
    assert "photoslot serve" in live.fix
    assert not [c for c in await emulator_requests(emulator) if c.get("do") == "create_queue"]


async def test_live_turbotext_reports_turbotexts_refusal_in_its_own_words(studio_cfg, make_cfg, pg_dsn, emulator):
    path, s = await live_studio(studio_cfg, make_cfg, pg_dsn)
    try:
        await ready_studio(path, turbotext=True)
        await emulator_control(emulator, provider="turbotext", script=["poll_fail:404"])
        checks = {c.name: c for c in await doctor.run(str(path), environ={}, live=True)}
    finally:
        await s.__aexit__(None, None, None)
    live = checks["live turbotext"]
    assert live.status == doctor.FAIL and "«Очередь не найдена»" in live.detail
