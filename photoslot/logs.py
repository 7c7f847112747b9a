"""Logging set-up and the one-line key=value event format.

Never pass image bytes, passwords, tokens or API keys to `event()`; values are cut to 300
characters so a provider's error text cannot flood the log either.

Text from outside is shown through one function, `escape_controls`, wherever it is shown: log
lines (here), the CLI's tables (cli/common.py `SafeTable`) and the web pages (web/render.py, every
`{{ value }}`). A username, slot name, file name or form field is whatever someone typed or sent:
CR, LF and every other control character (C0, DEL, C1: ESC and with it every terminal escape
sequence, CSI, OSC), the Unicode line separators and the bidi controls (embeddings, overrides,
isolates, the direction marks) become visible escapes (`\\r`, `\\n`, `\\x1b`, `\\u202e`). Pages
keep line breaks and tabs (a prompt has lines; HTML shows them as text), nothing else.

Log lines cannot be forged: every value is escaped here, once, for every `event()`, a backslash
is doubled and a quote inside a quoted value is `\\"`. A request therefore cannot start a line of its own, smuggle an extra `key=value`
into one, or send escape sequences to the terminal of whoever tails the log. The handler installed
by `setup()` escapes the control characters of any other message too (a `%s` in a plain
`log.warning`), leaving only the traceback of `log.exception` multi-line.
"""
from __future__ import annotations

import logging
import re
import sys

# C0 controls, DEL, C1 controls, U+2028/2029 (line/paragraph separators), the bidi controls:
# embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), the direction marks
# (U+200E, U+200F, U+061C) — they reorder what a terminal, an editor or a page shows.
_OTHERS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
_CONTROL = re.compile(f"[\x00-\x1f{_OTHERS}]")
_CONTROL_BUT_LINES = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f{_OTHERS}]")  # TAB, LF, CR kept
_SHORT = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
MAX_VALUE = 300


def _escape_char(match: re.Match) -> str:
    c = match.group(0)
    if c in _SHORT:
        return _SHORT[c]
    return f"\\x{ord(c):02x}" if ord(c) <= 0xff else f"\\u{ord(c):04x}"


def escape_controls(text: str, *, keep_lines: bool = False) -> str:
    """`text` with every control character written as a visible escape: one line, no terminal codes,
    no reordering. `keep_lines`: LF, CR and TAB stay (a page, where they are only whitespace)."""
    return (_CONTROL_BUT_LINES if keep_lines else _CONTROL).sub(_escape_char, text)


def has_controls(text: str) -> bool:
    """Whether `text` holds anything escape_controls would escape (what an admin-typed name refuses)."""
    return _CONTROL.search(text) is not None


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
