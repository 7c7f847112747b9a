"""Audit trail of admin writes and sign-ins. Callers pass field names and non-secret values only.

Details name what changed; a change of existing values also says what they were (`was`), so the
Audit page shows before → after."""
from __future__ import annotations

import getpass

ANONYMOUS = "anonymous"  # the actor of a failed sign-in: nobody is signed in yet


def os_actor() -> str:
    """The CLI records the OS user as the actor."""
    try:
        return f"os:{getpass.getuser()}"
    except Exception:  # no login name (service account, container)
        return "os:unknown"


async def record(db, clock, *, actor: str, source: str, action: str, target: str | None, details: dict) -> None:
    await db.execute("audit_insert", now=clock.now(), actor=actor, source=source, action=action,
                     target=target, details=details)


def _entry(r: dict) -> dict:
    return {"id": r["id"], "at": r["at"], "actor": r["actor"], "source": r["source"], "action": r["action"],
            "target": r["target"], "details": r["details"]}


async def entries(db, *, limit: int = 100, action: str | None = None) -> list[dict]:
    """Newest first, for `photoslot audit` and GET /api/audit."""
    if action is not None and "\x00" in action:  # no action holds NUL, and PostgreSQL text cannot take one
        return []
    rows = await db.fetchall("audit_page", limit=limit, action=action)
    return [_entry(r) for r in rows]


async def page(db, *, actor: str | None = None, page: int = 1, page_size: int = 50) -> tuple[list[dict], int]:
    """(one page of entries, newest first, of one actor or everyone; how many there are in all)."""
    if actor is not None and "\x00" in actor:
        return [], 0
    page = max(1, int(page))
    rows = await db.fetchall("audit_filtered", actor=actor, limit=page_size, offset=(page - 1) * page_size)
    total = (await db.fetchone("audit_filtered_count", actor=actor))["n"]
    return [_entry(r) for r in rows], int(total)


async def actors(db) -> list[str]:
    return [r["actor"] for r in await db.fetchall("audit_actors")]
