"""What `photoslot --version` prints: photoslot's version, the commit it was built from and the
PostgreSQL version it carries.

A built binary reads them from `_build_info.json`, written into the bundle at build time (the
binary has no git and no source tree to ask). Run from a checkout, the commit comes from git and
the PostgreSQL version from the bundled `pg_config`.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from photoslot import __version__, pgbin
from photoslot.build import build_info, frozen

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """Short commit of the checkout at `root`, with `-dirty` when tracked files changed; None outside git."""
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--"],
                               capture_output=True, timeout=10).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def commit() -> str:
    return build_info().get("commit") or git_commit() or "unknown"


def postgresql_version() -> str:
    baked = build_info().get("postgresql")
    if baked:
        return baked
    return pgbin.bundled_version() or "unknown"


def info() -> dict:
    return {"version": __version__, "commit": commit(), "postgresql": postgresql_version(),
            "built_at": build_info().get("built_at"), "binary": frozen()}


def line() -> str:
    i = info()
    return f"photoslot {i['version']} (commit {i['commit']}, PostgreSQL {i['postgresql']})"
