"""Every file, folder and test a doc names exists, named from the repository root.

README.md, every docs/*.md and config.example.yaml are read; a path is any word that starts with one
of the repository's own folders (`photoslot/`, `tests/`, `docs/`, `bench/`, `packaging/`) or names a
top-level file. A test file named without its folder (`test_recovery.py`) does not count as a path:
a reader cannot find it, so that fails too.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "config.example.yaml", *sorted((ROOT / "docs").glob("*.md"))]
FOLDERS = ("photoslot", "tests", "docs", "bench", "packaging")
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*[\w/])" % "|".join(FOLDERS))
TOP_FILES = re.compile(r"(?<![\w./-])((?:Makefile|setup\.cfg|pyproject\.toml|config\.example\.yaml))(?![\w.-])")
BARE_TEST = re.compile(r"(?<![\w./\\-])(test_\w+\.py)\b")
TEMPLATE = re.compile(r"[<>{}*…]|\bNN\b|\bX+\b")


def named_paths(text: str) -> list[str]:
    found = []
    for m in PATH.finditer(text):
        path = m.group(1).rstrip(".")
        rest = text[m.end():m.end() + 1]
        if rest and rest in "<{*…":  # photoslot/migrations/00NN_…, docs/diagrams/*.dot: a pattern, not a path
            continue
        if not TEMPLATE.search(path):
            found.append(path)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc):
    text = doc.read_text(encoding="utf-8")
    missing = sorted({p for p in named_paths(text) if not (ROOT / p).exists()})
    assert missing == [], f"{doc.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_test_file_is_named_with_its_folder(doc):
    bare = sorted({m.group(1) for m in BARE_TEST.finditer(doc.read_text(encoding="utf-8"))})
    assert bare == [], f"{doc.name} names test files without their folder (tests/…/): {bare}"


def test_the_path_finder_finds_what_a_reader_would_look_for():
    text = "see `tests/acceptance/test_recovery.py`, docs/DEPLOY.md §5 and photoslot/queries/*.sql; (bench/run.py)."
    assert named_paths(text) == ["tests/acceptance/test_recovery.py", "docs/DEPLOY.md", "bench/run.py"]
    assert [m.group(1) for m in BARE_TEST.finditer("run test_recovery.py or tests/unit/test_x.py")] == [
        "test_recovery.py"]
