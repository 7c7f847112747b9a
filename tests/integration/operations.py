"""Helpers for provider tests: configure a slot for any catalogue operation with real templates."""
from __future__ import annotations

from photoslot import slots, templates
from tests.conftest import FIXTURES

TEMPLATE_FILES = {"style": "template_style.jpg", "face": "template_face.png"}


async def add_template(s, role: str) -> str:
    data = (FIXTURES / TEMPLATE_FILES[role]).read_bytes()
    row = await templates.register(s.ctx, data=data, label=TEMPLATE_FILES[role], actor="test", source="test")
    return row["id"]


async def setup_slot(s, slot_id: str, provider: str, operation: str, *, prompt: str | None = None,
                     params: dict | None = None, roles: tuple[str, ...] = ()) -> dict:
    bound = {role: await add_template(s, role) for role in roles}
    settings: dict = {}
    if prompt is not None:
        settings["prompt"] = prompt
    if params:
        settings["params"] = params
    if bound:
        settings["templates"] = bound
    await slots.configure(s.ctx.db, s.clock, slot_id, actor="test", source="test", provider_id=provider,
                          operation_id=operation, settings_json=settings)
    return bound
