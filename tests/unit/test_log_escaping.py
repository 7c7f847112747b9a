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


# The same function for the CLI's tables and the web pages (logs.escape_controls).

TERMINAL_ATTACKS = ["Booth\x1b]0;pwned\x07 1", "Booth\x1b[31mred", "Booth \u202egnp.exe", "Booth\x9b2J", "[bold]x[/bold]"]


@pytest.mark.parametrize("value", TERMINAL_ATTACKS)
def test_a_cli_table_shows_outside_text_as_text(value):
    from rich.console import Console

    from photoslot.cli.common import new_table

    out = io.StringIO()
    console = Console(file=out, width=200, force_terminal=True, color_system=None)  # a terminal, no colours
    table = new_table("slots", ("slot", "name"))
    table.add_row("slot-001", value)
    console.print(table)
    text = out.getvalue()
    assert not any(c in text for c in "\x07\x9b\u202e")
    assert "\x1b]" not in text and "\x1b[31m" not in text  # no title change, no colour from the value
    assert logs.escape_controls(value) in text  # shown as typed (rich markup too), control characters visible


def test_a_page_shows_control_characters_visibly_and_keeps_line_breaks():
    import jinja2
    import markupsafe

    from photoslot.web import render

    env = jinja2.Environment(autoescape=True, finalize=render._shown)
    html = env.from_string("<p>{{ name }}</p><textarea>{{ prompt }}</textarea>{{ m }}").render(
        name="Booth\x1b]0;pwned\x07 \u202eevil", prompt="line one\nline two\ttab <b>",
        m=markupsafe.Markup("<i>trusted</i>"))
    assert "\x1b" not in html and "\x07" not in html and "\u202e" not in html
    assert "Booth\\x1b]0;pwned\\x07 \\u202eevil" in html
    assert "line one\nline two\ttab &lt;b&gt;" in html  # a prompt's lines stay, HTML is still escaped
    assert "<i>trusted</i>" in html  # a macro's output is not escaped twice


@pytest.mark.parametrize("name", ["Booth\x1b]0;pwned\x07", "line\nbreak", "tab\there", "\u202eevil", "nul\x00",
                                  "mark\u200f"])
def test_a_slot_name_with_control_characters_is_refused(name):
    from photoslot import slots
    from photoslot.errors import ValidationError

    with pytest.raises(ValidationError) as exc:
        slots.check_configuration(name=name, provider_id="gemini", operation_id="image_edit",
                                  settings_json={"prompt": "p"}, enabled=True)
    assert exc.value.details == {"name": "must not contain control characters (line breaks, tabs, escape or "
                                         "direction codes)"}
    slots.check_configuration(name="Свадьба · Booth №2 «A»", provider_id="gemini", operation_id="image_edit",
                              settings_json={"prompt": "p"}, enabled=True)
