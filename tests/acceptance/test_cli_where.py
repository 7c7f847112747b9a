"""What a newcomer following the docs trips over first: which studio a command works on, the URL
every command and link shows, and errors that stay one line wherever stderr goes."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tests.acceptance.procs import cli, env_for, post_photo, start_serve
from tests.conftest import FIXTURES, INGEST_PASSWORD, emulator_control, free_port, write_config


def run(config, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "photoslot", "--config", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_errors_are_one_line_on_stderr_when_it_is_a_pipe(tmp_path, pg_dsn):
    long_path = tmp_path / ("deep-folder-" * 12) / "photoslot.yaml"
    for args in (("--config", str(long_path), "jobs"), ("jobs", "--no-such-flag"), ("slot", "show"),
                 ("jobs", "--limit", "many"), ("no-such-command",)):
        r = subprocess.run([sys.executable, "-m", "photoslot", *args], env=env_for(pg_dsn),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("error: "), (args, r.stderr)
        assert r.stdout == ""
    r = subprocess.run([sys.executable, "-m", "photoslot", "--config", str(long_path), "jobs"], env=env_for(pg_dsn),
                       capture_output=True, text=True, timeout=60)
    assert r.stderr == f"error: config: config file not found: {long_path}\n"


def test_a_command_says_when_it_works_on_another_studio_than_the_previous_one(tmp_path, pg_dsn, emulator, clean_state):
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                          emulator_url=emulator.base_url, port=free_port())
    env = {**env_for(pg_dsn), "XDG_STATE_HOME": str(tmp_path / "state")}
    first = run(config, env, "slot", "list", "--json")
    assert first.returncode == 0 and first.stderr == ""  # nothing was used before: nothing to compare
    other = {**env, "PHOTOSLOT_DSN": pg_dsn + ("&" if "?" in pg_dsn else "?") + "application_name=elsewhere"}
    moved = run(config, other, "slot", "list", "--json")
    assert moved.returncode == 0 and len(json.loads(moved.stdout)) == 15  # stdout stays pure JSON
    assert moved.stderr.startswith("note: using database ") and "the previous photoslot command used" in moved.stderr
    assert len(moved.stderr.splitlines()) == 1
    again = run(config, other, "slot", "list", "--json")
    assert again.stderr == ""  # the same studio as last time: no note


async def test_serve_on_another_port_gives_every_url_that_port(tmp_path, pg_dsn, emulator, clean_state):
    """public_base_url unset, `serve --port` other than the file's: slot list, the result links and
    `slot test` all follow the port serve really listens on (Turbotext fetches by those links)."""
    config = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                          emulator_url=emulator.base_url, port=free_port())
    for args in (("slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit",
                  "--prompt", "turn the photo sepia"), ("settings", "set", "--ingest-password", INGEST_PASSWORD)):
        assert cli(config, pg_dsn, *args).returncode == 0
    port = free_port()
    serve = await start_serve(config, pg_dsn, port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert f"ingest URL pattern: {base}/ingest/slot-001" in await serve.wait_for_line("ingest URL pattern")
        rows = json.loads(cli(config, pg_dsn, "slot", "list", "--json").stdout)
        assert {r["ingest_url"] for r in rows} == {f"{base}/ingest/slot-{n:03d}" for n in range(1, 16)}
        r = await asyncio.to_thread(cli, config, pg_dsn, "slot", "test", "slot-001",
                                    str(FIXTURES / "dslr_landscape.jpg"), "--password", INGEST_PASSWORD,
                                    "--out", str(tmp_path / "r.jpg"), "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        shown = json.loads(cli(config, pg_dsn, "slot", "show", "slot-001", "--json").stdout)
        assert shown["recent_results"][0]["download_url"].startswith(f"{base}/public/results/")
        # why a shot failed is in the `jobs` table itself, not only in the server log
        await emulator_control(emulator, provider="gemini", script=["safety"])
        assert (await post_photo(port, (FIXTURES / "dslr_landscape.jpg").read_bytes()))[0] == 502
        table = cli(config, pg_dsn, "jobs", "--limit", "1").stdout
        assert "detail" in table and "provider_refused" in table and "Gemini blocked the request: SAFETY" in table
    finally:
        await serve.stop()
