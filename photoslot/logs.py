"""Logging set-up and the one-line key=value event format.

Never pass image bytes, passwords, tokens or API keys to `event()`; values are cut to 300
characters so a provider's error text cannot flood the log either.

Log lines cannot be forged: a username, slot id, file name or form field is whatever the client
sent, so every value is escaped here, once, for every `event()` — CR, LF and every other control
character (C0, DEL, C1), the Unicode line separators and the bidi overrides become visible
escapes (`\\r`, `\\n`, `\\x1b`, `\\u2028`), a backslash is doubled and a quote inside a quoted
value is `\\"`. A request therefore cannot start a line of its own, smuggle an extra `key=value`
into one, or send escape sequences to the terminal of whoever tails the log. The handler installed
by `setup()` escapes the control characters of any other message too (a `%s` in a plain
`log.warning`), leaving only the traceback of `log.exception` multi-line.
"""
from __future__ import annotations

import logging
import re
import sys

# C0 controls, DEL, C1 controls, U+2028/2029 (line/paragraph separators), bidi embeddings and
# isolates (U+202A–U+202E, U+2066–U+2069: they reorder what a terminal or an editor shows).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
MAX_VALUE = 300


def _escape_char(match: re.Match) -> str:
    c = match.group(0)
    if c in _SHORT:
        return _SHORT[c]
    return f"\\x{ord(c):02x}" if ord(c) <= 0xff else f"\\u{ord(c):04x}"


def escape_controls(text: str) -> str:
    """`text` with every control character written as a visible escape: one line, no terminal codes."""
    return _CONTROL.sub(_escape_char, text)


def value(raw) -> str:
    """One event field value as it appears in the line: escaped, cut, quoted when it needs to be."""
    text = escape_controls(str(raw).replace("\\", "\\\\"))
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + "…"
    if not text or any(c in text for c in ' "='):
        text = '"' + text.replace('"', '\\"') + '"'
    return text


class _Formatter(logging.Formatter):
    """The message part of every record on one line; a traceback (exc_text) keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(setup, "_done", False):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiohttp.access", "apscheduler", "google_genai", "httpx", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    setup._done = True  # type: ignore[attr-defined]


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields) -> None:
    if logger.isEnabledFor(level):
        parts = [f"event={value(name)}"] + [f"{k}={value(v)}" for k, v in fields.items() if v is not None]
        logger.log(level, " ".join(parts))
