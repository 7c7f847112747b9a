"""`photoslot doctor`, `photoslot migrate`, `--version`, and `serve`/`work` refusing a database a
newer photoslot migrated — as real processes."""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from photoslot import __version__, schema
from tests.acceptance.procs import cli, start_serve
from tests.conftest import free_port, write_config

pytestmark = pytest.mark.slow


def one_line(text: str) -> str:
    # the scratch database is another studio than the previous command's: the CLI says so in its own
    # `note:` line (docs/CLI.md), apart from the one error line checked here
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("note: using ")]
    assert len(lines) == 1, text
    return lines[0]


def test_doctor_prints_a_table_with_fixes_and_exits_1_until_the_studio_is_ready(tmp_path, pg_dsn, emulator,
                                                                                 clean_state):
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                          emulator_url=emulator.base_url, port=free_port())
    r = cli(config, pg_dsn, "doctor")
    assert r.returncode == 1
    assert "✗" in r.stdout and "✓" in r.stdout and "no slot is enabled" in r.stdout
    assert "photoslot settings set --ingest-password" in r.stdout and "problem(s) found" in r.stdout

    r = cli(config, pg_dsn, "doctor", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["ok"] is False
    assert {c["name"] for c in report["checks"] if c["status"] == "fail"} == {"ingest_password", "slots"}
    assert all(c["fix"] for c in report["checks"] if c["status"] == "fail")


async def test_doctor_passes_while_serve_holds_the_port(studio_config, pg_dsn):
    config, port = studio_config()
    serve = await start_serve(config, pg_dsn, port)
    try:
        # in a thread: the emulator answering doctor's key checks runs on this test's event loop
        r = await asyncio.to_thread(cli, config, pg_dsn, "doctor", "--json")
    finally:
        await serve.stop()
    report = json.loads(r.stdout)
    assert r.returncode == 0, [c for c in report["checks"] if c["status"] != "ok"]
    port_check = next(c for c in report["checks"] if c["name"] == "port")
    assert "held by a running photoslot" in port_check["detail"]


def test_migrate_brings_an_empty_database_forward_and_reports_it(tmp_path, pg_dsn, emulator, scratch_db):
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=scratch_db,
                          emulator_url=emulator.base_url)
    r = cli(config, scratch_db, "migrate")
    assert r.returncode == 0, r.stderr
    assert "applied 0001_baseline.sql" in r.stdout
    r = cli(config, scratch_db, "migrate", "--json")
    assert json.loads(r.stdout) == {"from_version": schema.latest_version(), "to_version": schema.latest_version(),
                                    "applied": [], "adopted_baseline": False}


async def test_serve_work_and_migrate_refuse_a_database_a_newer_photoslot_migrated(tmp_path, pg_dsn, emulator,
                                                                                  scratch_db):
    folder = tmp_path / "migrations"
    shutil.copytree(Path(schema.__file__).parent / "migrations", folder)
    newer = schema.latest_version() + 1
    (folder / f"{newer:04d}_from_the_future.sql").write_text("CREATE TABLE future (id int);")
    schema.migrate_dsn(scratch_db, folder=folder)
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=scratch_db,
                          emulator_url=emulator.base_url, port=free_port())
    config.chmod(0o600)  # it holds keys: serve would warn about a readable one, and stderr must be one line
    for args in (["serve"], ["work"], ["migrate"], ["slot", "list"]):
        r = cli(config, scratch_db, *args, timeout=60)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        line = one_line(r.stderr)
        assert line.startswith("error: the database schema is at version") and f"version {newer}" in line
        assert "Traceback" not in r.stderr + r.stdout


def test_version_names_the_release_the_commit_and_postgresql(tmp_path, pg_dsn):
    r = cli(tmp_path / "unused.yaml", pg_dsn, "--version")
    assert r.returncode == 0, r.stderr
    line = one_line(r.stdout)
    assert line.startswith(f"photoslot {__version__} (commit ") and "PostgreSQL 16" in line
