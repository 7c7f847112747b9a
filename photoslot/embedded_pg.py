"""The embedded PostgreSQL of a data dir (pgserver): joined at start, released at exit, stopped when
no photoslot process uses it any more — also when the last one was killed.

pgserver lists the processes using a server in `<pgdata>/.handle_pids.json`; the last one to exit
stops it (atexit). That leaves two holes, both seen at studios as a PostgreSQL running on after
photoslot was gone:

- a process killed with SIGKILL (a service manager's last resort, an out-of-memory kill, the
  shutdown watchdog's hard exit) runs no atexit: its pid stays listed and nobody stops the server;
- pgserver remembers the postmaster it met when it joined, so after PostgreSQL was restarted (an
  operator's `pg_ctl restart`, a crash and its recovery) a clean exit leaves the new one running.

So here:

- `join` first drops the pids of processes that no longer run (a killed predecessor's), lets
  pgserver start or join the server, and — for `serve` and `work` — starts a *watcher*;
- `release(pgdata, pid)` removes that pid and every dead one under pgserver's lock and, when
  nobody is left, stops the postmaster that `postmaster.pid` names *now* (pg_ctl fast, then
  immediate, then a kill — each bounded). The process itself calls it at exit;
- the watcher is a small process (`photoslot --watch-embedded-postgres …`, internal) whose stdin is
  a pipe from its owner. When the owner exits, however it exits, the operating system closes the
  pipe; the watcher then releases the owner's pid. Pipes close on process death on Windows as on
  POSIX, and the watcher lives in its own process group, so a Ctrl-C to the owner's console does
  not take it down first.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from photoslot.logs import event

log = logging.getLogger("photoslot.db")

WATCH_FLAG = "--watch-embedded-postgres"
PIDS_FILE = ".handle_pids.json"
STOP_TIMEOUT = 10  # seconds pg_ctl waits for a fast shutdown before the immediate one

_joined: dict[Path, object] = {}    # pgdata → pgserver server, per process
_watchers: dict[Path, subprocess.Popen] = {}  # kept referenced: a collected Popen would close the pipe


def _pgserver():
    from photoslot import pgbin  # lazily: a DSN deployment never needs the binaries

    return pgbin.import_pgserver()


def _system_user() -> str | None:
    """pgserver runs PostgreSQL as its own account when we are root (PostgreSQL refuses root)."""
    if sys.platform != "win32" and os.geteuid() == 0:
        return "pgserver"
    return None


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _read_pids(pgdata: Path) -> list[int]:
    try:
        return [int(p) for p in json.loads((pgdata / PIDS_FILE).read_text())]
    except (OSError, ValueError, TypeError):
        return []


def _write_pids(pgdata: Path, pids: list[int]) -> None:
    (pgdata / PIDS_FILE).write_text(json.dumps(pids))


def join(data_dir: Path, *, watch: bool = False):
    """Start (or join) the server of `<data_dir>/pg`; returns pgserver's handle. `watch`: also start
    the watcher that releases this process's place when it dies without running atexit."""
    pgserver = _pgserver()
    pgdata = (Path(data_dir) / "pg").resolve()
    if pgdata in _joined:
        return _joined[pgdata]
    if pgdata.exists():
        with pgserver.postgres_server.PostgresServer._lock:
            pids = _read_pids(pgdata)
            alive = [p for p in pids if _alive(p)]
            if alive != pids:
                _write_pids(pgdata, alive)
                event(log, "embedded_postgres_stale_users_dropped", pids=",".join(str(p) for p in pids if p not in alive))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    # Our release replaces pgserver's atexit clean-up: it stops the postmaster running now, not the
    # one pgserver met when it joined.
    atexit.unregister(server._cleanup)
    atexit.register(release, pgdata, os.getpid())
    _joined[pgdata] = server
    if watch:
        _start_watcher(pgdata)
    return server


def _start_watcher(pgdata: Path) -> None:
    from photoslot import build, pgbin

    args = [sys.executable] if build.frozen() else [sys.executable, "-m", "photoslot"]
    args += [WATCH_FLAG, str(pgdata), str(os.getpid()), str(pgbin.current_bin())]
    options: dict = {}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
    else:
        options["start_new_session"] = True
    try:
        _watchers[pgdata] = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, close_fds=True, **options)
    except OSError as exc:  # no watcher: a clean exit still releases; a killed process is pruned at the next start
        event(log, "embedded_postgres_watcher_failed", logging.WARNING, error=exc.__class__.__name__)


def release(pgdata: Path, pid: int) -> bool:
    """`pid` no longer uses the server of `pgdata`; stop the server when no live process does.
    True when this call stopped it."""
    pgdata = Path(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        return False  # never made, or removed (a test's temporary server)
    pgserver = _pgserver()
    with pgserver.postgres_server.PostgresServer._lock:
        pids = _read_pids(pgdata)
        left = [p for p in pids if p != pid and _alive(p)]
        if left != pids:
            _write_pids(pgdata, left)
        if left:
            return False
        return stop_postmaster(pgdata)


def stop_postmaster(pgdata: Path, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the postmaster `postmaster.pid` names now: pg_ctl fast, then immediate, then a kill."""
    pgserver = _pgserver()
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return False
    if info is None or not _alive(info.pid):
        return False
    for mode, wait in (("fast", timeout), ("immediate", 5)):
        try:
            pgserver._commands.pg_ctl(["-w", "-t", str(int(wait)), "-m", mode, "stop"], pgdata=pgdata,
                                      user=_system_user(), timeout=wait + 5)
            return True
        except (subprocess.SubprocessError, OSError):
            continue
    import psutil

    try:
        psutil.Process(info.pid).kill()
    except psutil.Error:
        pass
    return True


def watch(argv: list[str]) -> int:
    """The watcher process: wait for the owner to exit (its pipe closes), then release its place."""
    import signal

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            try:
                signal.signal(getattr(signal, name), signal.SIG_IGN)
            except (OSError, ValueError):
                pass
    import psutil

    pgdata, owner, bin_dir = Path(argv[0]), int(argv[1]), Path(argv[2])
    try:
        proc = psutil.Process(owner)  # by pid and start time: a reused pid is not the owner
    except psutil.Error:
        proc = None
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError, AttributeError):
        pass
    # The pipe closes when the owner is gone; should it close earlier, wait for the owner itself.
    while proc is not None:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.Error:
            break
        time.sleep(0.5)
    pgserver = _pgserver()
    pgserver._commands.POSTGRES_BIN_PATH = bin_dir
    pgserver.postgres_server.POSTGRES_BIN_PATH = bin_dir
    release(pgdata, owner)
    return 0
