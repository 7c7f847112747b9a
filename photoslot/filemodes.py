"""Owner-only files on POSIX: customers' photos, results and templates are nobody else's business.

Every photoslot process sets its umask to 077 (`private_umask`), so each file it creates is 0600
and each folder 0700, whichever module writes it; `serve` and `work` also tighten the media tree an
earlier version left behind (`tighten_tree`) and `serve` warns when the config file holding a secret is
readable by every user of the machine. Windows has no such modes: there the data dir's ACLs,
inherited from its parent folder, are what protect it (see docs/DEPLOY.md), and these are no-ops.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import yaml

from photoslot.logs import event

log = logging.getLogger("photoslot.filemodes")

POSIX = os.name == "posix"


def private_umask() -> None:
    if POSIX:
        os.umask(0o077)


def tighten_tree(root: Path) -> int:
    """Folders under `root` (and `root`) to 0700, files to 0600; returns how many were changed.
    Entries it cannot change (a shared mount that ignores modes, another owner's file) are skipped."""
    if not POSIX or not root.exists():
        return 0
    changed = 0

    def fix(path: Path, mode: int) -> None:
        nonlocal changed
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
                return
            os.chmod(path, mode)
            changed += 1
        except OSError:
            pass

    fix(root, 0o700)
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            fix(Path(folder) / d, 0o700)
        for f in files:
            fix(Path(folder) / f, 0o600)
    return changed


def make_private(cfg) -> None:
    """At `serve`/`work` start: the umask, then the media tree made the owner's. (The data dir itself
    is left as it is: its parts are private on their own — media and secrets here, pg/ by
    PostgreSQL — and the embedded PostgreSQL, started as root, needs to pass through it.)"""
    private_umask()
    if not POSIX:
        return
    changed = tighten_tree(cfg.media_root)
    if changed:
        event(log, "file_modes_tightened", changed=changed, media_root=cfg.media_root)


def _holds_secret(doc: dict) -> list[str]:
    """The dotted names of the secrets a config file sets (provider keys, metrics token, a DSN password)."""
    found = []
    providers = doc.get("providers") or {}
    for name, section in (providers.items() if isinstance(providers, dict) else ()):
        if isinstance(section, dict) and section.get("api_key"):
            found.append(f"providers.{name}.api_key")
    metrics = doc.get("metrics") or {}
    if isinstance(metrics, dict) and metrics.get("token"):
        found.append("metrics.token")
    database = doc.get("database") or {}
    dsn = database.get("dsn") if isinstance(database, dict) else None
    if isinstance(dsn, str) and ("password=" in dsn or ("@" in dsn and ":" in dsn.split("@", 1)[0].split("//")[-1])):
        found.append("database.dsn")
    return found


def config_exposed(path: Path | None) -> list[str]:
    """The secrets in config file `path` when every user of the machine can read it; else []."""
    if not POSIX or path is None:
        return []
    try:
        if not stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH:
            return []
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    return _holds_secret(doc) if isinstance(doc, dict) else []


def warn_if_config_exposed(cfg) -> bool:
    """`serve` start: one warning naming the file (and which keys, never their values)."""
    keys = config_exposed(cfg.source)
    if keys:
        event(log, "config_readable_by_others", logging.WARNING, file=Path(cfg.source).resolve(),
              holds=",".join(keys), fix=f"chmod 600 {Path(cfg.source).resolve()}")
    return bool(keys)
