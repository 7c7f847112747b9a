"""Provider clients by id, one per process, built from the config file.

Which key a client uses for a job is the worker's decision (worker/attempt.py): a key set over
the admin API wins over the config file's, read per job from the live settings.
"""
from __future__ import annotations

from photoslot.providers.base import ProviderClient
from photoslot.providers.gemini import GeminiClient
from photoslot.providers.turbotext import TurbotextClient


def make_clients(cfg) -> dict[str, ProviderClient]:
    return {"gemini": GeminiClient(cfg), "turbotext": TurbotextClient(cfg)}
