"""Headless Chromium for the web admin's browser tests, through Playwright for Python.

The browser is Debian's `chromium` package, launched through Playwright's `executable_path`
(Playwright's own browser download is not used). When it is missing the test set-up installs it
with apt-get — once per test session, and only where it can (root, apt-get present). When it still
is not there, every browser test is skipped with the one reason below, which `make test` prints
on one line (pytest's -rs summary), and the rest of the suite runs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.acceptance import procs
from tests.conftest import INGEST_PASSWORD, free_port, write_config
from tests.dbstate import reset_database

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
_tried_install = False


def find_chromium() -> str | None:
    explicit = os.environ.get("PHOTOSLOT_CHROMIUM")
    if explicit and Path(explicit).exists():
        return explicit
    for path in CANDIDATES:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


def _can_install() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure_chromium() -> tuple[str | None, str]:
    """(the browser's path, "") or (None, why the browser tests are skipped)."""
    global _tried_install
    found = find_chromium()
    if found:
        return found, ""
    if not _can_install():
        return None, "browser tests skipped: no chromium and cannot install it (needs root and apt-get: apt-get install -y chromium)"
    if not _tried_install:
        _tried_install = True
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        if subprocess.run(["apt-get", "install", "-y", "chromium"], **quiet).returncode != 0:
            subprocess.run(["apt-get", "update"], **quiet)
            subprocess.run(["apt-get", "install", "-y", "chromium"], **quiet)
    found = find_chromium()
    if found:
        return found, ""
    return None, "browser tests skipped: chromium is missing and `apt-get install -y chromium` did not install it"


def screenshot_dir(fallback: Path) -> Path:
    """Where the tests save their page screenshots: docs/images/ under `make screenshots`
    (PHOTOSLOT_SCREENSHOTS), else the test's temporary folder."""
    target = Path(os.environ.get("PHOTOSLOT_SCREENSHOTS") or fallback)
    target.mkdir(parents=True, exist_ok=True)
    return target


@contextlib.asynccontextmanager
async def launched_chromium(playwright_api, *, skip):
    """Debian's chromium through Playwright, or `skip(why)` when there is none."""
    path, why = ensure_chromium()
    if path is None:
        skip(why)
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class WebStudio:
    base: str
    port: int
    config: Path
    dsn: str
    passwords: dict
    emulator_url: str
    shots: Path
    ingest_password: str = INGEST_PASSWORD


@contextlib.asynccontextmanager
async def running_studio(tmp: Path, pg_dsn: str, **config):
    """A studio for a browser test module: a clean database, the ingest password set, `photoslot
    emulate` and `photoslot serve` as real processes (kept for the module, stopped here), with
    `config` on top of the test configuration."""
    reset_database(pg_dsn)
    emu_port, port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emu_port}"
    config_path = write_config(tmp / "photoslot.yaml", data_dir=tmp / "data", dsn=pg_dsn,
                               emulator_url=emulator_url, port=port, **config)
    r = procs.cli(config_path, pg_dsn, "settings", "set", "--ingest-password", INGEST_PASSWORD)
    assert r.returncode == 0, r.stderr
    emulator = await procs.start(config_path, pg_dsn, "emulate", "--port", str(emu_port), name="emulate")
    await emulator.wait_for_line("photoslot emulator listening")
    serve = await procs.start_serve(config_path, pg_dsn, port)
    # module-long processes: stopped here, not after each test
    procs.RUNNING.discard(emulator)
    procs.RUNNING.discard(serve)
    try:
        yield WebStudio(base=f"http://127.0.0.1:{port}", port=port, config=config_path, dsn=pg_dsn,
                        passwords=procs.first_start_passwords(config_path), emulator_url=emulator_url,
                        shots=screenshot_dir(tmp / "screenshots"))
    finally:
        await serve.stop()
        await emulator.stop()
