"""Shared fixtures: one real PostgreSQL and one real emulator per test session.

PostgreSQL is the embedded pgserver one (in a temporary directory) unless PHOTOSLOT_DSN names a
server. Each test starts from a clean database state (jobs, settings and audit emptied, slots
unconfigured) and a reset emulator.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import aiohttp
import psycopg2
import pytest

from photoslot.config import load_config
from tests.dbstate import reset_database

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
INGEST_PASSWORD = "booth-secret-1"
EMULATOR_KEY = "emulator-key"


def pytest_configure(config):
    if sys.platform == "win32":  # aiopg needs the selector loop
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())
    from tests import logscan

    logscan.install()


# A test still running after this long is probably waiting for something that will never come: the
# stacks of every thread and every asyncio task go to the real stderr (past pytest's capture), so a CI
# log shows where it waits even if the run is then killed. The test itself is left running.
HANG_REPORT_SECONDS = float(os.environ.get("PHOTOSLOT_TEST_HANG_SECONDS", "300"))


def _report_hang(name: str, capture) -> None:
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        _write_hang_report(name, sys.__stderr__)


def _write_hang_report(name: str, out) -> None:
    import faulthandler
    import gc

    out.write(f"\n=== {name} still running after {HANG_REPORT_SECONDS:.0f} s: threads, then asyncio tasks ===\n")
    faulthandler.dump_traceback(file=out, all_threads=True)
    for loop in [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]:
        for task in list(asyncio.all_tasks(loop)):
            out.write(f"--- {task!r}\n")
            task.print_stack(file=out)
    out.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    import threading

    capture = item.config.pluginmanager.getplugin("capturemanager")
    timer = threading.Timer(HANG_REPORT_SECONDS, _report_hang, args=(item.nodeid, capture))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def pytest_sessionfinish(session, exitstatus):
    # Everything logged during the run (in-process records and the output of every photoslot process
    # the tests started) must be free of the secrets and image bytes the tests used (docs/ARCHITECTURE.md).
    from tests import logscan

    leaks = logscan.find_leaks(logscan.everything())
    if leaks:
        sys.stderr.write("\nSECRET OR IMAGE BYTES FOUND IN LOGS:\n" + "\n".join(leaks[:20]) + "\n")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def pg_dsn():
    dsn = os.environ.get("PHOTOSLOT_DSN")
    if dsn:
        yield dsn
        return
    from photoslot.db import start_embedded

    tmp = Path(tempfile.mkdtemp(prefix="photoslot-test-pg-"))
    yield start_embedded(tmp)
    import pgserver

    server = pgserver.get_server(tmp / "pg")
    server.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def pg_safe_tmp():
    """A temporary folder for a PostgreSQL data dir of a test's own, outside pytest's basetemp.

    As root the embedded PostgreSQL runs as a helper account that must traverse every parent
    folder; pytest makes its basetemp root (/tmp/pytest-of-<user>) owner-only again at the start of
    every session, so a suite starting beside this one would lock that account out mid-test.
    """
    folder = Path(tempfile.mkdtemp(prefix="photoslot-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def database_of_its_own(pg_dsn: str, prefix: str):
    """An empty database on the session's PostgreSQL (its DSN), dropped afterwards."""
    import uuid

    from psycopg2.extensions import make_dsn

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(pg_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_dsn(pg_dsn, dbname=name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def scratch_db(pg_dsn):
    """An empty database of the test's own on the session's PostgreSQL, dropped afterwards."""
    with database_of_its_own(pg_dsn, "photoslot_scratch") as dsn:
        yield dsn


@pytest.fixture
def own_pg(pg_safe_tmp):
    """A PostgreSQL of the test's own, which the test may stop and start (outage drills)."""
    from tests.pg_instance import DedicatedPostgres

    pg = DedicatedPostgres(pg_safe_tmp / "own-pg")
    pg.start()
    yield pg
    pg.destroy()


@pytest.fixture(scope="session")
async def emulator():
    from photoslot.emulator import start_emulator

    running = await start_emulator(gemini_api_key=EMULATOR_KEY, turbotext_api_key=EMULATOR_KEY)
    yield running
    await running.stop()


async def emulator_control(emulator, **body) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{emulator.base_url}/emulator/control", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def emulator_stats(emulator) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{emulator.base_url}/emulator/stats") as r:
            return await r.json()


async def emulator_requests(emulator) -> list[dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{emulator.base_url}/emulator/requests") as r:
            return (await r.json())["requests"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, *, data_dir: Path, dsn: str, emulator_url: str, **overrides) -> Path:
    """A YAML config for tests: short rehearsal windows, fast leases, the emulator as provider."""
    import yaml

    raw = {
        "data_dir": str(data_dir),
        "database": {"dsn": dsn, "pool_size": 10},
        "server": {"host": "127.0.0.1", "port": overrides.pop("port", 8080), "shutdown_grace_seconds": 5},
        "workers": {"in_process": 4, "lease_seconds": 2, "heartbeat_seconds": 0.5},
        "ingest": {"sync_response_seconds": 3, "sync_response_bounds": [1, 60]},
        "providers": {
            "gemini": {"api_key": EMULATOR_KEY, "base_url": emulator_url, "max_parallel": 4},
            "turbotext": {"api_key": EMULATOR_KEY, "base_url": emulator_url},
        },
        "sweeper": {"interval_seconds": 1},
        "logging": {"level": "INFO"},
    }
    for dotted, value in overrides.items():
        node = raw
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture
def make_cfg(tmp_path, pg_dsn, emulator):
    """Build a Config for this test; keyword overrides use `section__key=value`."""

    def make(**overrides):
        path = write_config(tmp_path / "photoslot.yaml", data_dir=tmp_path / "data", dsn=pg_dsn,
                            emulator_url=emulator.base_url, **overrides)
        return load_config(path, environ={})

    return make


@pytest.fixture
async def clean_state(pg_dsn, emulator):
    reset_database(pg_dsn)
    await emulator_control(emulator, reset=True)


@pytest.fixture
def photo_bytes():
    return (FIXTURES / "dslr_landscape.jpg").read_bytes()
