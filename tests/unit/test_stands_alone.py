"""The project stands alone: no tracked file cites the team's design input or a folder of the
machine it was built on (a clone in any folder must read the same)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The design input lived beside the repository; work trees and virtualenvs are machine folders.
# Spelt in pieces so that this check does not itself hold what it looks for (a plain search of the
# tree for those names then finds nothing at all).
SHARED, DESIGN, WORK = "shared", "DESIGN", "work"
FORBIDDEN = re.compile(rf"\.\./{SHARED}/|{DESIGN} §|/{WORK}/|/wt/|/root/|/home/\w+/|\.venv/bin/py-spy|/tmp/perf-bench")


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        names = out.splitlines()
    except (OSError, subprocess.CalledProcessError):  # an export without git: the tree, minus what is built
        skip = {".git", ".venv", "build", "dist", "photoslot-data", "__pycache__"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if not skip & set(p.relative_to(ROOT).parts)]
    files = []
    for name in names:
        path = ROOT / name
        if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".gif", ".ico"} or not path.is_file():
            continue
        files.append(path)
    return files


def test_no_tracked_file_names_the_design_input_or_a_machine_folder():
    offenders = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {FORBIDDEN.search(line).group(0)}")
    assert offenders == []


def test_the_check_catches_a_machine_path():
    assert FORBIDDEN.search(f'<text id="title">/{WORK}/wt/perf/.venv/bin/py-spy record -p 1</text>')
    assert FORBIDDEN.search(f"see ../{SHARED}/{DESIGN}.md")
    assert FORBIDDEN.search(f"as {DESIGN} § 4 says")
    assert not FORBIDDEN.search("folder `/tmp/demo`, `photoslot emulate --port 8765`")
