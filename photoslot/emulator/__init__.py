"""Local stand-in for the Gemini and Turbotext image APIs (see docs/EMULATOR.md)."""

from .app import RunningEmulator, make_app, run, start_emulator

__all__ = ["RunningEmulator", "make_app", "run", "start_emulator"]
