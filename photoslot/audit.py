"""Audit trail of admin writes. Callers pass field names and non-secret values only."""
from __future__ import annotations

import getpass


def os_actor() -> str:
    """The CLI records the OS user as the actor."""
    try:
        return f"os:{getpass.getuser()}"
    except Exception:  # no login name (service account, container)
        return "os:unknown"


async def record(db, clock, *, actor: str, source: str, action: str, target: str | None, details: dict) -> None:
    await db.execute("audit_insert", now=clock.now(), actor=actor, source=source, action=action,
                     target=target, details=details)
