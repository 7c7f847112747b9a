"""A PostgreSQL of its own for tests that stop and start the server (outage drills).

The session's PostgreSQL is shared by every test, so it is never stopped; this one lives in the
test's temporary directory. It is the same embedded pgserver build photoslot uses, driven with its
own pg_ctl, so stop/start are the real thing (backends terminated, socket gone, then back).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg2


class DedicatedPostgres:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.server = None
        self.dsn: str | None = None

    def start(self) -> str:
        from photoslot.db import start_embedded

        self.dsn = start_embedded(self.root)
        import pgserver

        self.server = pgserver.get_server(self.root / "pg", cleanup_mode="stop")
        return self.dsn

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.root / "pg", user=self.server.system_user, timeout=30)

    def stop(self, mode: str = "fast") -> None:
        """`fast` terminates every session (a restart); `immediate` is a crash."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start_again(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def is_up(self) -> bool:
        try:
            psycopg2.connect(self.dsn, connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def destroy(self) -> None:
        if self.server is not None:
            try:
                if self.is_up():
                    self.stop()
            except subprocess.SubprocessError:
                pass
            import atexit

            atexit.unregister(self.server._cleanup)
            self.server._instances.pop(self.server.pgdata, None)
