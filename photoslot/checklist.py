"""The first-run checklist the Slots page shows until a studio is ready for its booths.

Each step is decided here, once, from what the studio has done — not from ticks an admin sets:

1. provider key — every provider a configured slot uses has an API key (with no slot yet: any
   provider has one);
2. ingest password handed to the booths — a password is set and a booth's photo got past it (a
   booth shot, not a test shot, became a job);
3. public address — one is set (Settings or the config file) and it is not this PC's loopback;
4. a slot configured — at least one slot is configured and enabled;
5. a test shot passed — an admin's test shot came back with a result.
"""
from __future__ import annotations

from dataclasses import dataclass

from photoslot import provider_status, public_address, slots

STEPS = ("provider_key", "ingest_password", "public_address", "slot", "test_shot")


@dataclass(frozen=True)
class Step:
    id: str
    done: bool
    link: str


async def steps(ctx) -> list[Step]:
    facts = await ctx.db.fetchone("checklist_facts")
    configured = [s for s in await slots.list_all(ctx.db) if slots.is_configured(s)]
    keys = await provider_status.keys_configured(ctx.db, ctx.cfg)
    used = {s["provider_id"] for s in configured}
    key_done = all(keys.get(p, False) for p in used) if used else any(keys.values())
    address = await public_address.load(ctx.db, ctx.cfg)
    ready = [s for s in configured if s["enabled"]]
    first_slot = ready[0]["id"] if ready else (configured[0]["id"] if configured else "slot-001")
    return [
        Step("provider_key", key_done, "/admin/settings#provider-keys"),
        Step("ingest_password", bool(facts["password_set"] and facts["booth_shot"]), "/admin/settings#ingest-password"),
        Step("public_address", address.is_set and not address.this_pc_only, "/admin/settings#public-address"),
        Step("slot", bool(ready), f"/admin/slots/{first_slot}"),
        Step("test_shot", bool(facts["test_shot_passed"]), f"/admin/slots/{first_slot}#test-shot"),
    ]


def finished(found: list[Step]) -> bool:
    return all(s.done for s in found)
