"""Headless Chromium for the web admin's browser tests, through Playwright for Python.

The browser is Debian's `chromium` package, launched through Playwright's `executable_path`
(Playwright's own browser download is not used). When it is missing the test set-up installs it
with apt-get — once per test session, and only where it can (root, apt-get present). When it still
is not there, every browser test is skipped with the one reason below, which `make test` prints
on one line (pytest's -rs summary), and the rest of the suite runs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

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
