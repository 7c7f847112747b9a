"""The studio's CLI as real processes: settings, slots, jobs — tables for people, --json for scripts."""
from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from tests.acceptance.procs import cli, post_photo, start_serve
from tests.conftest import FIXTURES, INGEST_PASSWORD, free_port, write_config


@pytest.fixture
def config(tmp_path, pg_dsn, emulator, clean_state):
    return write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                        emulator_url=emulator.base_url, port=free_port())


def test_settings_show_json_prints_only_json_and_never_the_password(config, pg_dsn):
    r = cli(config, pg_dsn, "settings", "set", "--sync-timeout", "5", "--ingest-password", "s3cret-booth", "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["sync_response_seconds"] == 5 and shown["ingest_password_set"] is True
    r = cli(config, pg_dsn, "settings", "show", "--json")
    assert json.loads(r.stdout)["ingest_password_updated_by"].startswith("os:")
    assert "s3cret-booth" not in r.stdout + r.stderr


def test_settings_set_out_of_bounds_names_the_field_and_exits_2(config, pg_dsn):
    r = cli(config, pg_dsn, "settings", "set", "--sync-timeout", "75")
    assert r.returncode == 2
    assert "sync_response_seconds" in r.stderr and "between 1 and 60" in r.stderr
    assert r.stdout == ""


def test_ingest_password_without_text_is_asked_for(config, pg_dsn):
    r = cli(config, pg_dsn, "settings", "set", "--ingest-password", input="typed-password\ntyped-password\n")
    assert r.returncode == 0, r.stderr
    assert "typed-password" not in r.stdout
    assert json.loads(cli(config, pg_dsn, "settings", "show", "--json").stdout)["ingest_password_set"]


def test_slot_list_has_fifteen_rows_with_ingest_urls(config, pg_dsn):
    rows = json.loads(cli(config, pg_dsn, "slot", "list", "--json").stdout)
    assert [r["id"] for r in rows] == [f"slot-{n:03d}" for n in range(1, 16)]
    assert all(r["ingest_url"].endswith(f"/ingest/{r['id']}") for r in rows)
    table = cli(config, pg_dsn, "slot", "list")
    assert table.returncode == 0 and "slot-015" in table.stdout


def test_slot_set_validates_against_the_catalogue(config, pg_dsn):
    r = cli(config, pg_dsn, "slot", "set", "slot-003", "--provider", "gemini", "--operation", "image_edit",
            "--param", "temperature=9")
    assert r.returncode == 2
    assert "settings_json.prompt" in r.stderr and "settings_json.params.temperature" in r.stderr
    r = cli(config, pg_dsn, "slot", "set", "slot-003", "--provider", "nope")
    assert r.returncode == 2 and "provider_id" in r.stderr
    r = cli(config, pg_dsn, "slot", "set", "slot-016", "--name", "x")
    assert r.returncode == 2 and "slot-016" in r.stderr
    r = cli(config, pg_dsn, "slot", "set", "slot-003", "--param", "novalue")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


def test_slot_set_then_edit_one_field_keeps_the_others(config, pg_dsn):
    r = cli(config, pg_dsn, "slot", "set", "slot-004", "--name", "Wedding", "--provider", "gemini",
            "--operation", "image_edit", "--prompt", "golden hour", "--param", "temperature=0.4", "--json")
    assert r.returncode == 0, r.stderr
    r = cli(config, pg_dsn, "slot", "set", "slot-004", "--prompt", "blue hour", "--disable", "--json")
    slot = json.loads(r.stdout)
    assert slot["name"] == "Wedding" and slot["enabled"] is False
    assert slot["settings_json"] == {"prompt": "blue hour", "params": {"temperature": 0.4}}
    assert slot["version"] == 3


async def serve_configured_slot(config, pg_dsn):
    """slot-001 on Gemini and the ingest password, set with the CLI; then `serve` on the config's port."""
    assert cli(config, pg_dsn, "slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit",
               "--prompt", "sepia").returncode == 0
    assert cli(config, pg_dsn, "settings", "set", "--ingest-password", INGEST_PASSWORD).returncode == 0
    port = int(yaml.safe_load(config.read_text())["server"]["port"])
    return port, await start_serve(config, pg_dsn, port, "--workers", "2")


async def test_a_studio_day_configure_shoot_inspect_reset(config, pg_dsn, photo_bytes):
    port, serve = await serve_configured_slot(config, pg_dsn)
    try:
        status, headers, _ = await post_photo(port, photo_bytes)
        assert status == 200
        job_id = headers["X-Job-Id"]
        jobs = json.loads(cli(config, pg_dsn, "jobs", "--slot", "slot-001", "--json").stdout)
        assert jobs[0]["id"] == job_id and jobs[0]["status"] == "succeeded"
        assert jobs[0]["total_elapsed_ms"] is not None
        shown = json.loads(cli(config, pg_dsn, "slot", "show", "slot-001", "--json").stdout)
        assert shown["recent_results"][0]["job_id"] == job_id
        table = cli(config, pg_dsn, "jobs")
        assert table.returncode == 0 and job_id in table.stdout
        assert cli(config, pg_dsn, "jobs", "--status", "bogus").returncode == 2
        assert cli(config, pg_dsn, "slot", "reset", "slot-001").returncode == 0
        assert (await post_photo(port, photo_bytes))[0] == 404
        assert "ingest" in serve.output and "job_succeeded" in serve.output
    finally:
        await serve.stop()


def test_sweep_json_reports_counts(config, pg_dsn):
    r = cli(config, pg_dsn, "sweep", "--json")
    assert r.returncode == 0, r.stderr
    assert {"jobs_timed_out", "uploads_removed", "orphan_files_removed"} <= set(json.loads(r.stdout))


def test_providers_lists_the_catalogue(config, pg_dsn):
    data = json.loads(cli(config, pg_dsn, "providers", "--json").stdout)
    gemini = next(p for p in data if p["id"] == "gemini")
    assert "image_edit" in [op["id"] for op in gemini["operations"]]


def test_a_broken_config_is_one_clear_line_and_exit_2(tmp_path, pg_dsn):
    bad = tmp_path / "bad.yaml"
    bad.write_text("servr: {}\n")
    r = cli(bad, pg_dsn, "settings", "show")
    assert r.returncode == 2 and r.stderr.strip() == "error: config: unknown config key: servr"


async def test_slot_test_runs_a_real_shot_through_the_running_server(config, pg_dsn, tmp_path):
    port, serve = await serve_configured_slot(config, pg_dsn)
    try:
        photo = FIXTURES / "dslr_portrait_orientation6.jpg"
        out = tmp_path / "result.jpg"
        r = await asyncio.to_thread(cli, config, pg_dsn, "slot", "test", "slot-001", str(photo), "--out", str(out),
                                    "--password", INGEST_PASSWORD, "--json")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["status"] == 200 and report["saved_to"] == str(out) and report["job_id"]
        assert out.read_bytes()[:3] == b"\xff\xd8\xff"
        r = await asyncio.to_thread(cli, config, pg_dsn, "slot", "test", "slot-002", str(photo),
                                    "--password", INGEST_PASSWORD)
        assert r.returncode == 1 and "slot_not_found" in r.stdout
        r = await asyncio.to_thread(cli, config, pg_dsn, "slot", "test", "slot-001", str(photo), "--password", "nope")
        assert r.returncode == 1 and "invalid_password" in r.stdout
    finally:
        await serve.stop()
