"""Every `photoslot …` command a doc shows exists, with the flags it shows.

Read from README.md and docs/*.md: inline code (`photoslot slot set …`), the command lines of shell
sessions (`$ photoslot …`, fenced or indented, and every line of ```sh blocks) and the README's
indented command list.
The command tree and its options come from the CLI itself (typer/click), so a renamed command or
flag, or a typo in a doc, fails here. `a|b|c` at a command's place means each of them.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from photoslot.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = ("sh", "bash", "shell")
COMMAND = re.compile(r"(?:^|\$ |[;&|(] *)(?:\.venv/bin/)?(photoslot(?: [^;&|#`)\n]*)?)")
INLINE = re.compile(r"`(?:\.venv/bin/)?(photoslot [^`]*)`")


def snippets(text: str) -> list[tuple[int, str]]:
    out, fence, prev = [], None, ""
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is not None:
            if fence in SHELL_FENCES or line.startswith("$ "):
                out += [(n, m.group(1)) for m in COMMAND.finditer(line[2:] if line.startswith("$ ") else line)]
            continue
        out += [(n, m.group(1)) for m in INLINE.finditer(line)]
        if line.startswith("    ") and line.strip().startswith("$ "):  # an indented session's command
            out += [(n, m.group(1)) for m in COMMAND.finditer(line.strip()[2:])]
        if line.startswith("    ") and line.strip().startswith("photoslot "):  # README's command list
            if not (prev.strip().startswith("$ ") and prev.startswith("    ")):  # not a session's output
                out.append((n, line.strip().split("  #")[0]))
        prev = line
    return out


def problems_of(snippet: str, root) -> list[str]:
    words = snippet.replace("\\", " ").split()[1:]
    if words[:1] in (["--config"], ["[--config"]):
        words = words[2:]
    cmd, found = root, []
    while words and hasattr(cmd, "commands"):
        if words[0].lstrip("[").startswith("-") or words[0] in ("COMMAND", "…"):
            break
        names = words[0].split("|")
        if not all(n in cmd.commands for n in names):
            return [f"no command {words[0]!r} under {cmd.name!r}"]
        if len(names) > 1:  # `slot list|show|set`: each must exist; their flags are not checked
            return []
        cmd = cmd.commands[names[0]]
        words = words[1:]
    options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in words:
        flag = word.strip("[]").split("=", 1)[0]
        if flag.startswith("--") and flag not in options:
            found.append(f"{cmd.name} has no option {flag}")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_a_doc_shows_exists_with_its_flags(doc):
    root = typer.main.get_command(app)
    wrong = [f"{doc.name}:{n}: `{s.strip()}`: {p}" for n, s in snippets(doc.read_text(encoding="utf-8"))
             for p in problems_of(s, root)]
    assert wrong == [], "\n".join(wrong)


def test_the_checker_catches_a_renamed_command_and_a_wrong_flag():
    root = typer.main.get_command(app)
    assert problems_of("photoslot slot sett slot-001", root) == ["no command 'sett' under 'slot'"]
    assert problems_of("photoslot jobs --slott S", root) == ["jobs has no option --slott"]
    assert problems_of("photoslot --config x.yaml slot list|show|set …", root) == []
    assert problems_of("photoslot slot test SLOT IMAGE [--out FILE] [--ca-file FILE]", root) == []
    found = [s for _, s in snippets((ROOT / "README.md").read_text(encoding="utf-8"))]
    assert "photoslot jobs cancel JOB_ID" in [s.strip() for s in found] and len(found) > 20
