"""Everything logged during the test run, and the check that none of it holds a secret or image bytes.

`install()` (from conftest's pytest_configure) adds a root logging handler that keeps every record
of the session, and records the output of every photoslot process the acceptance tests start
(stdout+stderr of `Proc`, stdout/stderr of `cli()`). `find_leaks()` looks for the ingest password,
the provider API keys, any value a test registered with `secret()`, and fragments of every fixture
image in the forms bytes could take in a text log (raw, repr-escaped, hex, base64).
"""
from __future__ import annotations

import base64
import logging
from pathlib import Path

_lines: list[str] = []
_procs: list = []
_extra_secrets: set[str] = set()
_installed = False

FIXTURES = Path(__file__).resolve().parent / "fixtures"


class _Keep(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted is not our concern here
            pass


def install() -> None:
    global _installed
    if _installed:
        return
    handler = _Keep(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    # photoslot's own INFO lines (one per ingest / job transition) are what must be checked.
    logging.getLogger("photoslot").setLevel(logging.INFO)
    _wrap_process_helpers()
    _installed = True


def _wrap_process_helpers() -> None:
    from tests.acceptance import procs

    original_init = procs.Proc.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        _procs.append(self)

    procs.Proc.__init__ = init
    original_cli = procs.cli

    def cli(*args, **kwargs):
        result = original_cli(*args, **kwargs)
        _lines.append(f"[cli stdout] {result.stdout}")
        _lines.append(f"[cli stderr] {result.stderr}")
        return result

    procs.cli = cli


def secret(value: str, *, shown_by: str | None = None) -> None:
    """Register one more value (an admin password, a webhook token …) that must never be logged.

    `shown_by` is the stdout of the command whose job is to show that value once (`users reset`):
    that answer is the one place it may appear, so it is kept out of the scan; anywhere else it leaks.
    """
    if value:
        _extra_secrets.add(value)
    if shown_by is not None:
        answer = f"[cli stdout] {shown_by}"
        _lines[:] = [line.replace(value, "<shown once>") if line == answer else line for line in _lines]


def mark() -> int:
    return len(_lines)


def since(position: int) -> list[str]:
    return _lines[position:]


def record(text: str) -> None:
    _lines.append(text)


def everything() -> list[str]:
    out = list(_lines)
    for p in _procs:
        out.extend(p.lines)
    return out


def _image_fragments() -> list[str]:
    frags: list[str] = []
    for path in sorted(FIXTURES.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
            continue
        data = path.read_bytes()
        for start in (len(data) // 3, len(data) // 2, (2 * len(data)) // 3):
            start -= start % 3  # base64 of the whole file contains this chunk's encoding only when aligned
            chunk = data[start:start + 24]
            frags.append(repr(chunk)[2:-1])
            frags.append(chunk.hex())
            frags.append(base64.b64encode(chunk).decode())
            frags.append(chunk.decode("latin-1"))
    return [f for f in frags if len(f) >= 16]


def forbidden() -> dict[str, str]:
    from tests.conftest import EMULATOR_KEY, INGEST_PASSWORD

    out = {INGEST_PASSWORD: "ingest password", EMULATOR_KEY: "provider API key"}
    for value in _extra_secrets:
        out[value] = "registered secret"
    for frag in _image_fragments():
        out[frag] = "image bytes"
    return out


def find_leaks(lines: list[str]) -> list[str]:
    needles = forbidden()
    leaks = []
    for line in lines:
        for needle, what in needles.items():
            if needle in line:
                leaks.append(f"{what}: {line[:200]!r}")
                break
    return leaks
