"""Provider clients by id, one per process, built from the config."""
from __future__ import annotations

from photoslot.providers.gemini import GeminiClient


def make_clients(cfg) -> dict:
    return {"gemini": GeminiClient(cfg)}
