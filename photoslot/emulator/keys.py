"""Typed aiohttp application keys shared by the emulator's modules."""

from __future__ import annotations

from aiohttp import web

from .control import EmulatorState

STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("photoslot_emulator_state", EmulatorState)
