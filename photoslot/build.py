"""Facts baked into the one-file binary at build time (`_build_info.json`), and whether this
process is that binary. A checkout or an installed package has no build facts: {}."""
from __future__ import annotations

import functools
import json
import sys
from importlib import resources

BUILD_INFO_FILE = "_build_info.json"


def frozen() -> bool:
    """True inside the one-file binary (PyInstaller sets sys.frozen)."""
    return bool(getattr(sys, "frozen", False))


@functools.lru_cache(maxsize=1)
def build_info() -> dict:
    """The build's facts, or {} when running from a checkout / an installed package."""
    try:
        text = resources.files("photoslot").joinpath(BUILD_INFO_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return {}
    return json.loads(text)
