"""Provider clients by id, one per process, built from the config."""
from __future__ import annotations

from photoslot import settings as live_settings
from photoslot.providers.gemini import GeminiClient
from photoslot.providers.turbotext import TurbotextClient


def make_clients(cfg) -> dict:
    return {"gemini": GeminiClient(cfg), "turbotext": TurbotextClient(cfg)}


async def use_stored_key(client, db, cfg, provider_id: str) -> None:
    """A key set over the admin API (PUT /api/settings provider_keys) wins over the config file's,
    from the next job on, in every process — no restart."""
    key = await live_settings.provider_api_key(db, cfg, provider_id)
    if key and key != client.api_key:
        client.api_key = key
        if getattr(client, "_client", None) is not None:
            client._client = None  # the Gemini SDK client is bound to its key: build a new one
