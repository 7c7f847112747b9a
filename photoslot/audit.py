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


async def entries(db, *, limit: int = 100, action: str | None = None) -> list[dict]:
    """Newest first, for `photoslot audit` and GET /api/audit."""
    if action is not None and "\x00" in action:  # no action holds NUL, and PostgreSQL text cannot take one
        return []
    rows = await db.fetchall("audit_page", limit=limit, action=action)
    return [{"id": r["id"], "at": r["at"], "actor": r["actor"], "source": r["source"], "action": r["action"],
             "target": r["target"], "details": r["details"]} for r in rows]
