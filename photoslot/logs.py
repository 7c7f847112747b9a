"""Logging set-up and the one-line key=value event format.

Never pass image bytes, passwords, tokens or API keys to `event()`; values are cut to 300
characters so a provider's error text cannot flood the log either.
"""
from __future__ import annotations

import logging
import sys


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(setup, "_done", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiohttp.access", "apscheduler", "google_genai", "httpx", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    setup._done = True  # type: ignore[attr-defined]


def _fmt(value) -> str:
    text = str(value).replace("\n", " ")
    if len(text) > 300:
        text = text[:300] + "…"
    if not text or any(c in text for c in ' "='):
        text = '"' + text.replace('"', "'") + '"'
    return text


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields) -> None:
    if logger.isEnabledFor(level):
        parts = [f"event={name}"] + [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
        logger.log(level, " ".join(parts))
