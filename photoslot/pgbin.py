"""The PostgreSQL programs photoslot runs: pgserver's bundled build (postgres, initdb, pg_ctl,
pg_dump, pg_restore) and, for an external server newer than that build, the client tools on PATH.

Inside the one-file binary the bundle is unpacked to a temporary folder that is deleted when the
process that unpacked it exits. PostgreSQL must not run from there: the server started by one
photoslot process outlives it whenever another process (serve, a CLI command) still uses it, and
it keeps loading files from its installation (plpgsql, the other extension libraries; on Windows
every backend is a new postgres.exe). So the binary first copies the PostgreSQL installation to
`<data_dir>/runtime/postgresql-<bundle id>/` and points pgserver there; a checkout or a pip
install uses pgserver's files where they are.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import psutil

from photoslot import build

log = logging.getLogger("photoslot.pgbin")

RUNTIME_DIR = "runtime"
COPY_PREFIX = "postgresql-"
# Not needed to run, dump or restore: headers and static libraries (a third of the install).
NOT_COPIED = ("include", "*.a", "pkgconfig")


class PgToolError(RuntimeError):
    """No suitable PostgreSQL client program (pg_dump/pg_restore) for this server."""


def import_pgserver():
    """pgserver, imported quietly: platformdirs warns about XDG_RUNTIME_DIR on servers (harmless)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        import pgserver._commands  # noqa: F401  (the module holding POSTGRES_BIN_PATH)
        import pgserver.postgres_server  # noqa: F401
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver


def exe(name: str) -> str:
    return name + ".exe" if sys.platform == "win32" else name


def bundled_bin() -> Path:
    """pgserver's own bin folder (never the patched one): <pgserver>/pginstall/bin."""
    pgserver = import_pgserver()
    return Path(pgserver._commands.__file__).resolve().parent / "pginstall" / "bin"


def current_bin() -> Path:
    """Where pgserver runs PostgreSQL from in this process (the stable copy once it was made)."""
    return Path(import_pgserver()._commands.POSTGRES_BIN_PATH)


def tool_version(path: Path | str) -> tuple[int, str] | None:
    """(major, "16.2") from `<tool> --version`, or None when it cannot run."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)(?:\.(\d+))?", out or "")
    if not m:
        return None
    return int(m.group(1)), m.group(0)


@functools.lru_cache(maxsize=1)
def bundled_version() -> str | None:
    v = tool_version(bundled_bin() / exe("pg_config"))
    return v[1] if v else None


# ---------------------------------------------------------------- the stable copy (binary only)

def _layout(root: Path) -> tuple[Path, Path]:
    """(pginstall, pgserver.libs) under `root`, laid out as in site-packages: the programs find
    their shared libraries through RPATH $ORIGIN/../../../pgserver.libs."""
    return root / "pgserver" / "pginstall", root / "pgserver.libs"


def _copy_tree(dest: Path) -> None:
    src_install = bundled_bin().parent
    src_libs = src_install.parent.parent / "pgserver.libs"
    install, libs = _layout(dest)
    shutil.copytree(src_install, install, ignore=shutil.ignore_patterns(*NOT_COPIED))
    if src_libs.is_dir():
        shutil.copytree(src_libs, libs)
    if sys.platform != "win32":
        # The bundle unpacks owner-only; PostgreSQL may run as another account (pgserver's
        # helper user under root), which must read the tree and run the programs.
        for path in [dest, *dest.rglob("*")]:
            runnable = path.is_dir() or path.parent.name in ("bin", "pgserver.libs") or ".so" in path.name
            path.chmod(0o755 if runnable else 0o644)


def bundle_id() -> str:
    return build.build_info().get("pg_bundle_id") or (bundled_version() or "unknown")


def use_stable_copy(data_dir: Path) -> Path:
    """Binary only: make sure `<data_dir>/runtime/postgresql-<id>` holds the bundled PostgreSQL
    and point pgserver at it. Elsewhere a no-op. Returns the bin folder pgserver now uses."""
    if not build.frozen():
        return current_bin()
    runtime = Path(data_dir) / RUNTIME_DIR
    dest = runtime / f"{COPY_PREFIX}{bundle_id()}"
    marker = dest / ".complete"
    if not marker.exists():
        runtime.mkdir(parents=True, exist_ok=True)
        if dest.exists():  # a copy that was interrupted before its marker was written
            shutil.rmtree(dest, ignore_errors=True)
        tmp = runtime / f".{dest.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _copy_tree(tmp)
        (tmp / ".complete").write_text(bundle_id(), encoding="utf-8")
        try:
            os.replace(tmp, dest)
        except OSError:  # another photoslot process finished its copy first: use that one
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_stale_copies(runtime, keep=dest)
    bin_dir = _layout(dest)[0] / "bin"
    pgserver = import_pgserver()
    # pgserver reads this module global at every call (initdb, pg_ctl, its permission fixes as root).
    pgserver._commands.POSTGRES_BIN_PATH = bin_dir
    pgserver.postgres_server.POSTGRES_BIN_PATH = bin_dir
    return bin_dir


def _remove_stale_copies(runtime: Path, keep: Path) -> None:
    """Copies left by an older binary, unless a PostgreSQL still runs from one."""
    stale = [p for p in runtime.iterdir() if p.name.startswith(COPY_PREFIX) and p != keep]
    if not stale:
        return
    running = set()
    for proc in psutil.process_iter(["exe"]):
        exe_path = proc.info.get("exe")
        if exe_path:
            running.add(exe_path)
    for path in stale:
        if any(str(e).startswith(str(path) + os.sep) for e in running):
            continue
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- client tools for a server

def client_tool(name: str, server_major: int) -> Path:
    """`pg_dump`/`pg_restore` able to talk to a PostgreSQL `server_major` server: the bundled one
    when it is at least that new, else the one on PATH when that is."""
    tried = []
    bundled = current_bin() / exe(name)
    v = tool_version(bundled)
    if v and v[0] >= server_major:
        return bundled
    tried.append(f"bundled {name} {v[1] if v else 'unusable'}")
    on_path = shutil.which(name)
    if on_path:
        v = tool_version(on_path)
        if v and v[0] >= server_major:
            return Path(on_path)
        tried.append(f"{on_path} {v[1] if v else 'unusable'}")
    raise PgToolError(f"{name} {server_major} or newer is needed for this PostgreSQL {server_major} server "
                      f"({'; '.join(tried)}); install the PostgreSQL {server_major} client tools on PATH")
