"""Administration as real processes: first-start admin passwords (a 0600 file when `serve` has no
terminal), `users reset`, `stats`, `audit` — and the admin API of the running server agreeing with the CLI."""
from __future__ import annotations

import json
import re

import aiohttp
import pytest

from tests.acceptance.procs import cli, first_start_passwords, start_serve
from tests.conftest import FIXTURES, INGEST_PASSWORD

pytestmark = pytest.mark.slow


async def _login(http, base, name, password) -> int:
    async with http.post(f"{base}/api/login", json={"username": name, "password": password}) as r:
        return r.status


async def test_serve_writes_first_start_passwords_to_a_private_file_and_users_reset_replaces_one(
        studio_config, pg_dsn):
    config, port = studio_config()
    base = f"http://127.0.0.1:{port}"
    serve = await start_serve(config, pg_dsn, port)
    try:
        # stdout is a pipe here, as under a service manager: the passwords go to a file, its path is shown
        shown = await serve.wait_for_line("first-start passwords written to")
        passwords = first_start_passwords(config)
        assert sorted(passwords) == ["igor", "serg"] and shown.endswith("delete it once noted)")
        async with aiohttp.ClientSession() as http:
            assert await _login(http, base, "serg", passwords["serg"]) == 200
            r = cli(config, pg_dsn, "users", "reset", "serg")
            assert r.returncode == 0, r.stderr
            new = re.search(r"\(shown once\): (\S+)", r.stdout).group(1)
            # the running server reads the new hash at once: no restart
            assert await _login(http, base, "serg", passwords["serg"]) == 401
            assert await _login(http, base, "serg", new) == 200
            assert await _login(http, base, "igor", passwords["igor"]) == 200

            # an ingest through the server, then the CLI's stats see it
            form = aiohttp.FormData()
            form.add_field("password", INGEST_PASSWORD)
            form.add_field("fileToUpload", (FIXTURES / "small_photo.png").read_bytes(), filename="a.png")
            async with http.post(f"{base}/ingest/slot-001", data=form) as r:
                assert r.status == 200
        r = cli(config, pg_dsn, "stats", "--json")
        assert r.returncode == 0, r.stderr
        summary = json.loads(r.stdout)["summary"]
        assert summary["ingest_count"] == 1 and summary["success"] == 1 and summary["gemini_tokens"] > 0
        r = cli(config, pg_dsn, "stats", "--slot", "slot-001", "--since", "1h")
        assert r.returncode == 0 and "ingest time p50 / p95" in r.stdout and "estimated cost" in r.stdout
    finally:
        await serve.stop()
    assert passwords["serg"] not in serve.output and passwords["igor"] not in serve.output  # nor logged

    again = await start_serve(config, pg_dsn, port)
    try:
        assert "admin serg password" not in again.output and "first-start passwords" not in again.output
    finally:
        await again.stop()


def test_audit_lists_cli_writes_as_the_os_user_and_never_a_secret(studio_config, pg_dsn):
    config, _ = studio_config()  # `slot set` and `settings set --ingest-password` via the CLI
    r = cli(config, pg_dsn, "settings", "set", "--sync-timeout", "4")
    assert r.returncode == 0, r.stderr
    r = cli(config, pg_dsn, "audit", "--json")
    assert r.returncode == 0, r.stderr
    entries = json.loads(r.stdout)
    assert [e["action"] for e in entries][:3] == ["settings.update", "settings.update", "slot.update"]
    assert all(e["source"] == "cli" and e["actor"].startswith("os:") for e in entries)
    assert entries[0]["details"] == {"sync_response_seconds": 4.0, "was": {"sync_response_seconds": 3.0}}
    assert entries[1]["details"] == {"ingest_password": "<changed>"}
    assert INGEST_PASSWORD not in r.stdout
    table = cli(config, pg_dsn, "audit")
    assert table.returncode == 0 and "settings.update" in table.stdout and "slot-001" in table.stdout


def test_admin_cli_errors_exit_non_zero_with_one_line(studio_config, pg_dsn):
    config, _ = studio_config()
    r = cli(config, pg_dsn, "users", "reset", "root")
    assert r.returncode == 2 and "serg and igor" in r.stderr and r.stdout == ""
    r = cli(config, pg_dsn, "stats", "--since", "yesterday")
    assert r.returncode == 2 and "since" in r.stderr
    r = cli(config, pg_dsn, "stats", "--slot", "slot-016")
    assert r.returncode == 2 and "slot-016" in r.stderr


def test_cli_parity_commands_write_through_the_same_services(studio_config, pg_dsn):
    config, _ = studio_config()
    assert cli(config, pg_dsn, "slot", "reset-stats", "slot-001").returncode == 0
    r = cli(config, pg_dsn, "settings", "provider-key", "gemini", "--value", "cli-secret-key-42")
    assert r.returncode == 0 and "cli-secret-key-42" not in r.stdout + r.stderr
    r = cli(config, pg_dsn, "media", "purge", "--scope", "full", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "queued_for_gc"
    assert cli(config, pg_dsn, "media", "purge", "--scope", "all").returncode == 2
    r = cli(config, pg_dsn, "job", "00000000-0000-0000-0000-000000000000")
    assert r.returncode == 2 and "no job" in r.stderr
    shown = json.loads(cli(config, pg_dsn, "settings", "show", "--json").stdout)
    assert shown["provider_keys"]["gemini"]["source"] == "settings"
    r = cli(config, pg_dsn, "audit", "--json", "--limit", "3")
    entries = json.loads(r.stdout)
    assert [e["action"] for e in entries] == ["media.purge", "settings.update", "slot.reset_stats"]
    assert entries[1]["details"] == {"provider_key.gemini": "<changed>"}
    assert "cli-secret-key-42" not in r.stdout
    stats = json.loads(cli(config, pg_dsn, "stats", "--slot", "slot-001", "--json").stdout)
    assert stats["summary"]["last_reset_at"] is not None


async def test_jobs_cancel_finalizes_a_pending_job_as_the_os_user_and_refuses_a_final_one(studio_config, pg_dsn):
    import datetime as dt

    from photoslot import jobs
    from photoslot.config import load_config
    from photoslot.context import AppContext

    config, _ = studio_config()
    ctx = await AppContext.open(load_config(config), dsn=pg_dsn)
    try:  # a job nobody claims (no worker runs): queued as the ingest queues it
        job_id = jobs.new_job_id()
        now = ctx.clock.now()
        await jobs.enqueue(ctx.db, job_id=job_id, slot=await ctx.db.fetchone("ingest_context", slot_id="slot-001"),
                           now=now, expires_at=now + dt.timedelta(seconds=60), upload_path=None, upload_mime=None,
                           upload_size=None, metadata={})
    finally:
        await ctx.close()
    r = cli(config, pg_dsn, "jobs", "cancel", str(job_id), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["job"]["failure_reason"] == "admin_cancelled"
    r = cli(config, pg_dsn, "jobs", "cancel", str(job_id))
    assert r.returncode == 1 and "already finalized" in r.stderr and r.stdout == ""
    r = cli(config, pg_dsn, "jobs", "cancel", "no-such-job")
    assert r.returncode == 2 and "no job" in r.stderr
    entry = json.loads(cli(config, pg_dsn, "audit", "--json", "--limit", "1").stdout)[0]
    assert (entry["action"], entry["target"], entry["source"]) == ("job.cancel", str(job_id), "cli")
    assert entry["actor"].startswith("os:")
    listed = json.loads(cli(config, pg_dsn, "jobs", "--status", "cancelled", "--json").stdout)
    assert [j["id"] for j in listed] == [str(job_id)]
    # --since: only jobs created within the window (the web admin's Jobs period filter, the API's from/to)
    recent = json.loads(cli(config, pg_dsn, "jobs", "--since", "1h", "--json").stdout)
    assert [j["id"] for j in recent] == [str(job_id)]
    r = cli(config, pg_dsn, "jobs", "--since", "yesterday")
    assert r.returncode == 2 and "--since" in r.stderr


def test_the_ingest_password_is_revealed_generated_and_typed_twice_from_the_cli(studio_config, pg_dsn):
    from tests import logscan

    config, _ = studio_config()
    r = cli(config, pg_dsn, "settings", "show", "--reveal-ingest-password")
    assert r.returncode == 0, r.stderr
    assert f"ingest password: {INGEST_PASSWORD}" in r.stdout
    logscan.secret(INGEST_PASSWORD, shown_by=r.stdout)  # the one place it may appear: the answer that shows it
    r = cli(config, pg_dsn, "settings", "show", "--json")
    assert INGEST_PASSWORD not in r.stdout and json.loads(r.stdout)["ingest_password_revealable"] is True

    r = cli(config, pg_dsn, "settings", "set", "--generate-ingest-password", "--json")
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)["ingest_password"]
    logscan.secret(made, shown_by=r.stdout)
    assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", made)
    r = cli(config, pg_dsn, "settings", "show", "--reveal-ingest-password", "--json")
    assert json.loads(r.stdout)["ingest_password"] == made
    logscan.secret(made, shown_by=r.stdout)

    # asked for without echo, twice: two different answers change nothing
    r = cli(config, pg_dsn, "settings", "set", "--ingest-password", input="typed-once-1234\ntyped-twice-1234\n")
    assert r.returncode != 0
    r = cli(config, pg_dsn, "settings", "show", "--reveal-ingest-password", "--json")
    assert json.loads(r.stdout)["ingest_password"] == made
    logscan.secret(made, shown_by=r.stdout)
    r = cli(config, pg_dsn, "settings", "set", "--ingest-password", input="typed-same-1234\ntyped-same-1234\n")
    assert r.returncode == 0, r.stderr
    logscan.secret("typed-same-1234")
    r = cli(config, pg_dsn, "audit", "--json", "--limit", "10")
    actions = [a["action"] for a in json.loads(r.stdout)]
    assert actions.count("settings.ingest_password_revealed") == 3 and "settings.update" in actions
    assert made not in r.stdout and INGEST_PASSWORD not in r.stdout  # the audit names the reveal, never the value
