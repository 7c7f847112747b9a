"""The backup drill, as a studio runs it: back up while `serve` takes photos, restore on a "spare PC"
(a new data dir with its own embedded PostgreSQL), and the restored studio serves the same slots,
shows the same stats and the same audit trail (plus the restore itself)."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.acceptance.procs import Proc, cli, env_for, start_serve
from tests.conftest import FIXTURES, INGEST_PASSWORD, emulator_control, free_port

pytestmark = pytest.mark.slow


def embedded_env() -> dict:
    env = env_for("")
    env.pop("PHOTOSLOT_DSN")  # the new data dir's own embedded PostgreSQL, as on a fresh PC
    return env


def cli_embedded(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "photoslot", "--config", str(config), *args], env=embedded_env(),
                          capture_output=True, text=True, timeout=timeout)


async def serve_embedded(config: Path, port: int) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "photoslot", "--config", str(config), "serve", "--port", str(port), env=embedded_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    p = Proc(proc, "serve-restored")
    await p.wait_for_line("photoslot serving on", timeout=90)
    return p


async def booth_post(port: int, slot: str = "slot-001") -> tuple[int, bytes, str | None]:
    form = aiohttp.FormData()
    form.add_field("password", INGEST_PASSWORD)
    form.add_field("fileToUpload", (FIXTURES / "dslr_landscape.jpg").read_bytes(), filename="shot.jpg",
                   content_type="image/jpeg")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{port}/ingest/{slot}", data=form) as r:
            return r.status, await r.read(), r.headers.get("X-Job-Id")


def read_json(config: Path, dsn: str | None, *args: str):
    r = cli(config, dsn, *args, "--json") if dsn else cli_embedded(config, *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def slot_settings(rows: list[dict]) -> list[tuple]:
    return [(s["id"], s["name"], s["provider_id"], s["operation_id"], s["enabled"], s["settings_json"]) for s in rows]


async def test_a_backup_taken_while_serving_restores_on_a_new_data_dir_and_serves_the_same_studio(
        studio_config, pg_dsn, emulator, tmp_path, pg_safe_tmp):
    config, port = studio_config(ingest__sync_response_seconds=30)  # a drill of data, not of deadlines
    r = cli(config, pg_dsn, "slot", "set", "slot-002", "--name", "Style booth", "--provider", "gemini",
            "--operation", "style_transfer", "--prompt", "paint it", "--template",
            f"style={FIXTURES / 'template_style.jpg'}")
    assert r.returncode == 0, r.stderr
    serve = await start_serve(config, pg_dsn, port)
    try:
        assert (await booth_post(port))[0] == 200
        assert (await booth_post(port, "slot-002"))[0] == 200
        await emulator_control(emulator, provider="gemini", script=["fail:400"])
        assert (await booth_post(port))[0] == 502  # a failed job belongs in the stats too
        archive = tmp_path / "studio.photoslot"
        r = cli(config, pg_dsn, "backup", str(archive), "--with-results", "--json")  # serve is running
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["templates"] == 1 and report["results"] == 2 and report["missing_files"] == []
        before = {"slots": read_json(config, pg_dsn, "slot", "list"), "stats": read_json(config, pg_dsn, "stats"),
                  "audit": read_json(config, pg_dsn, "audit", "--limit", "1000")}
        result_job = next(j for j in read_json(config, pg_dsn, "jobs") if j["status"] == "succeeded")
    finally:
        await serve.stop()

    spare = pg_safe_tmp / "spare-pc"  # its own embedded PostgreSQL lives here
    spare.mkdir()
    spare_config = spare / "photoslot.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["data_dir"] = str(spare / "data")
    raw["database"]["dsn"] = None
    spare_config.write_text(yaml.safe_dump(raw))
    r = cli_embedded(spare_config, "restore", str(archive))
    assert r.returncode == 0, r.stderr
    assert "restored" in r.stdout and "2 result file(s)" in r.stdout

    assert slot_settings(read_json(spare_config, None, "slot", "list")) == slot_settings(before["slots"])
    after_stats = read_json(spare_config, None, "stats")
    assert after_stats["summary"] == before["stats"]["summary"] and after_stats["data"] == before["stats"]["data"]
    audit = read_json(spare_config, None, "audit", "--limit", "1000")
    assert audit[0]["action"] == "studio.restore" and audit[0]["target"] == archive.name
    assert audit[1:] == before["audit"]

    r = cli_embedded(spare_config, "restore", str(archive))
    assert r.returncode == 1 and "is not empty" in r.stderr and "--force" in r.stderr

    spare_port = free_port()
    serve = await serve_embedded(spare_config, spare_port)
    try:
        status, body, job_id = await booth_post(spare_port)
        assert status == 200 and body[:3] == b"\xff\xd8\xff" and job_id
        status, body, _ = await booth_post(spare_port, "slot-002")  # its template came along, at its new path
        assert status == 200 and body[:3] == b"\xff\xd8\xff"
        async with aiohttp.ClientSession() as s:  # a result made before the backup downloads here
            async with s.get(f"http://127.0.0.1:{spare_port}/public/results/{result_job['id']}") as resp:
                assert resp.status == 200 and (await resp.read())[:3] == b"\xff\xd8\xff"
    finally:
        await serve.stop()


def test_restore_into_a_database_refuses_one_that_is_not_empty_unless_forced(studio_config, pg_dsn, scratch_db,
                                                                             tmp_path):
    config, _ = studio_config()
    archive = tmp_path / "studio.tar"
    r = cli(config, pg_dsn, "backup", str(archive))
    assert r.returncode == 0, r.stderr
    target = tmp_path / "target.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["data_dir"] = str(tmp_path / "target-data")
    target.write_text(yaml.safe_dump(raw))

    r = cli(target, scratch_db, "restore", str(archive), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["database"] == "database.dsn"
    assert read_json(target, scratch_db, "slot", "show", "slot-001")["provider_id"] == "gemini"

    r = cli(target, scratch_db, "restore", str(archive))
    assert r.returncode == 1 and "the database holds" in r.stderr and "--force" in r.stderr
    assert r.stdout == ""
    assert cli(target, scratch_db, "slot", "reset", "slot-001").returncode == 0
    r = cli(target, scratch_db, "restore", str(archive), "--force")
    assert r.returncode == 0, r.stderr
    assert read_json(target, scratch_db, "slot", "show", "slot-001")["provider_id"] == "gemini"
    audit = read_json(target, scratch_db, "audit")
    assert [a["action"] for a in audit].count("studio.restore") == 1  # the forced restore replaced everything
    r = cli(target, scratch_db, "restore", "--discard-previous")  # the studio it replaced was kept until now
    assert r.returncode == 0 and "removed the kept studio" in r.stdout, r.stderr


def test_a_file_that_is_not_a_backup_is_refused(studio_config, pg_dsn, tmp_path):
    config, _ = studio_config()
    bogus = tmp_path / "holiday.jpg"
    bogus.write_bytes((FIXTURES / "dslr_landscape.jpg").read_bytes())
    r = cli(config, pg_dsn, "restore", str(bogus))
    assert r.returncode == 1 and "is not a photoslot backup" in r.stderr
