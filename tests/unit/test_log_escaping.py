"""Log lines cannot be forged: every value a client supplies comes out on one line, escaped.

One test per source of such values (username, slot id, file name, form fields); the acceptance
test tests/acceptance/test_attacks.py sends them to a real `serve` and reads its stderr.
"""
from __future__ import annotations

import io
import logging

import pytest

from photoslot import logs


@pytest.fixture
def captured():
    """A logger writing through photoslot's own formatter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs._Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("photoslot.test-escaping")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)


def _fields(line: str) -> list[str]:
    """logfmt keys of one line (quoted values may hold spaces and escaped quotes)."""
    keys, i = [], 0
    while i < len(line):
        j = line.find("=", i)
        if j < 0:
            break
        keys.append(line[i:j].rsplit(" ", 1)[-1])
        i = j + 1
        if i < len(line) and line[i] == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
        else:
            while i < len(line) and line[i] != " ":
                i += 1
    return keys


FORGERIES = [
    "serg\r\nWARNING photoslot.auth event=login user=igor client=127.0.0.1",
    "serg\nevent=login user=igor",
    "serg\x1b[2K\x1b[1Gevent=login user=igor",  # ANSI: erase the line, back to column 1
    "serg\u2028event=login",
    "serg\u202eevent=login",  # right-to-left override
    'serg" user="igor',
    "serg\\\" user=igor",
    "serg\x00\x07\x7f\x85",
]


@pytest.mark.parametrize("value", FORGERIES)
def test_a_username_cannot_forge_a_line_or_a_field(captured, value):
    logger, buffer = captured
    logs.event(logger, "login_failed", logging.WARNING, user=value, client="203.0.113.5")
    text = buffer.getvalue()
    assert text.count("\n") == 1 and "\r" not in text and "\x1b" not in text
    assert not any(c in text for c in "\x00\x07\x7f\x85\u2028\u202e")
    assert _fields(text.strip()) == ["event", "user", "client"]


def test_a_slot_id_from_the_url_cannot_forge_a_line(captured):
    logger, buffer = captured
    slot = "slot-001\r\n2025-01-01 00:00:00,000 INFO photoslot.ingest event=ingest slot=slot-002 status=200"
    logs.event(logger, "ingest", slot=slot, outcome="not_found", status=404, ms=1)
    text = buffer.getvalue()
    assert text.count("\n") == 1
    assert "slot-001\\r\\n2025-01-01" in text
    assert _fields(text.strip()) == ["event", "slot", "outcome", "status", "ms"]


def test_a_file_name_cannot_forge_a_line(captured):
    logger, buffer = captured
    logs.event(logger, "job_queued", filename="IMG_0001.JPG\n\x1b]0;pwned\x07 status=200", job="j1")
    text = buffer.getvalue()
    assert text.count("\n") == 1 and "\x1b" not in text and "\x07" not in text
    assert "\\n\\x1b]0;pwned\\x07" in text
    assert _fields(text.strip()) == ["event", "filename", "job"]


def test_form_field_names_and_values_cannot_forge_a_line(captured):
    logger, buffer = captured
    fields = {"event\r\nERROR x": "v", "booth": "A\tB\r\nevent=fake"}
    logs.event(logger, "ingest_fields", names=",".join(fields), booth=fields["booth"])
    text = buffer.getvalue()
    assert text.count("\n") == 1 and "\r" not in text and "\t" not in text
    assert _fields(text.strip()) == ["event", "names", "booth"]


def test_plain_messages_are_kept_on_one_line_too(captured):
    logger, buffer = captured
    logger.warning("ingest crashed (slot %s)", "slot-001\nERROR forged")
    assert buffer.getvalue() == "WARNING photoslot.test-escaping ingest crashed (slot slot-001\\nERROR forged)\n"


def test_a_traceback_keeps_its_lines_but_the_message_does_not(captured):
    logger, buffer = captured
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed for %s", "a\nb")
    first, *rest = buffer.getvalue().splitlines()
    assert first.endswith("failed for a\\nb") and rest[0].startswith("Traceback")


def test_long_values_are_cut_and_ordinary_ones_left_alone(captured):
    assert logs.value("slot-001") == "slot-001"
    assert logs.value("IMG 0001.JPG") == '"IMG 0001.JPG"'
    assert logs.value("Фото_1.jpg") == "Фото_1.jpg"  # printable Unicode is not a threat
    assert logs.value("x" * 1000).endswith("…") and len(logs.value("x" * 1000)) == logs.MAX_VALUE + 1
