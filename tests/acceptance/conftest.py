from __future__ import annotations

import pytest

from tests.acceptance.procs import RUNNING, cli
from tests.conftest import INGEST_PASSWORD, free_port, write_config


@pytest.fixture
def studio_config(tmp_path, pg_dsn, emulator, clean_state):
    """A configured studio: config file on a free port, slot-001 on Gemini, ingest password set — via the CLI."""

    def make(**overrides):
        port = free_port()
        path = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                            emulator_url=emulator.base_url, port=port, **overrides)
        r = cli(path, pg_dsn, "slot", "set", "slot-001", "--provider", "gemini", "--operation", "image_edit",
                "--prompt", "turn the photo sepia")
        assert r.returncode == 0, r.stderr
        r = cli(path, pg_dsn, "settings", "set", "--ingest-password", INGEST_PASSWORD)
        assert r.returncode == 0, r.stderr
        return path, port

    return make


@pytest.fixture(autouse=True)
async def stop_leftover_processes():
    """Whatever a test started and did not stop (an assertion failed first) is stopped here."""
    yield
    for proc in list(RUNNING):
        await proc.stop()
