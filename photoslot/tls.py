"""HTTPS for `serve`: one SSLContext, reloaded in place when the certificate is renewed.

`load_cert_chain` on the live context changes what *new* handshakes present; connections already
open keep the session they negotiated, so a renewal drops nobody. A renewal is noticed by polling
the files' mtime/size every `server.tls_check_seconds`, and at once on SIGHUP where the OS has it.
A half-written pair (cert and key not matching yet) fails to load: the old chain stays in use and
the next check tries again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import tempfile
from pathlib import Path

from photoslot.logs import event

log = logging.getLogger("photoslot.tls")


class TLSConfigError(OSError):
    """Unusable TLS settings or files; `serve` reports it as "cannot start the server: …"."""


def enabled(cfg) -> bool:
    return bool(cfg.get("server.tls_cert_file") or cfg.get("server.tls_key_file"))


def _stamp(*paths: Path) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


class CertReloader:
    def __init__(self, cert_file: str | Path, key_file: str | Path, *, check_seconds: float = 5.0) -> None:
        self.cert = Path(cert_file).expanduser()
        self.key = Path(key_file).expanduser()
        self.check_seconds = check_seconds
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(f"cannot load TLS certificate {self.cert} / key {self.key}: {exc}") from None
        self._stamp = _stamp(self.cert, self.key)
        self._task: asyncio.Task | None = None
        self._sighup = False

    def reload(self, *, why: str) -> bool:
        stamp = _stamp(self.cert, self.key)
        try:
            self._load_checked()
        except (OSError, ssl.SSLError) as exc:
            # Keep serving the previous chain; a renewal tool may be half-way through writing.
            event(log, "tls_reload_failed", logging.WARNING, why=why, error=f"{exc.__class__.__name__}: {exc}")
            return False
        self._stamp = stamp
        event(log, "tls_certificate_reloaded", why=why, cert=str(self.cert))
        return True

    def _load_checked(self) -> None:
        """Load the pair into the live context only once it is known to load.

        A failed load_cert_chain can leave a context holding the new certificate with the old key
        (every later handshake fails), so the pair is first tried on a scratch context — from a
        private snapshot of both files, so a renewal tool writing meanwhile cannot slip a different
        pair between the trial and the real load.
        """
        with tempfile.TemporaryDirectory(prefix="photoslot-tls-") as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_bytes(self.cert.read_bytes())
            key.touch(mode=0o600)
            key.write_bytes(self.key.read_bytes())
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
            self.context.load_cert_chain(cert, key)

    def check(self) -> bool:
        if _stamp(self.cert, self.key) != self._stamp:
            return self.reload(why="file_changed")
        return False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if hasattr(signal, "SIGHUP"):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGHUP, lambda: self.reload(why="sighup"))
                self._sighup = True
        self._task = asyncio.create_task(self._watch(), name="photoslot-tls-watch")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                # On the loop's thread, not a worker thread: handshakes read the context there too.
                self.check()
            except Exception as exc:  # never let the watcher die: the next tick tries again
                event(log, "tls_reload_failed", logging.WARNING, why="check", error=exc.__class__.__name__)

    async def stop(self) -> None:
        if self._sighup:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def from_config(cfg) -> CertReloader | None:
    cert, key = cfg.get("server.tls_cert_file"), cfg.get("server.tls_key_file")
    if not cert and not key:
        return None
    if not (cert and key):
        raise TLSConfigError("set both server.tls_cert_file and server.tls_key_file to serve HTTPS")
    return CertReloader(cert, key, check_seconds=float(cfg.get("server.tls_check_seconds")))
