"""setup.cfg's python_requires is what the code needs: an interpreter it allows must run it. (The
google-genai floor is proved by running the Gemini tests on it: tests/acceptance/test_install_floors.py.)"""
from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Standard-library names that first appeared in Python 3.11
PY311 = re.compile(r"\basyncio\.timeout(?:_at)?\(|\basyncio\.TaskGroup\b|\bexcept\*|^\s*import tomllib\b|"
                   r"\bdatetime\.UTC\b|\btyping\.Self\b|\benum\.StrEnum\b|\bExceptionGroup\b", re.M)


def floor() -> tuple[int, ...]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", cfg["options"]["python_requires"].strip())
    assert match, "python_requires must be a plain '>=X.Y' floor"
    return int(match.group(1)), int(match.group(2))


def test_python_requires_allows_no_interpreter_the_code_cannot_run_on():
    uses = sorted({f"{path.relative_to(ROOT)}: {m.group(0).strip()}"
                   for path in (ROOT / "photoslot").rglob("*.py")
                   for m in PY311.finditer(path.read_text(encoding="utf-8"))})
    assert uses, "no 3.11 API found: the scan is broken"
    assert floor() >= (3, 11), f"python_requires {floor()} but the code uses 3.11 APIs: {uses[:5]}"
