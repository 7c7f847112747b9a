"""Every SQL statement photoslot runs, by name, from photoslot/queries/*.sql (one file per subject).

A statement starts at a `-- name: <name>` line; a name defined twice stops the import, so a
query can never be shadowed by a twin in another file.
"""
from __future__ import annotations

import re
from importlib import resources

def _load_queries() -> dict[str, str]:
    """Every statement photoslot runs, by name, from photoslot/queries/*.sql (one file per domain)."""
    queries: dict[str, str] = {}
    folder = resources.files("photoslot").joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        for block in re.split(r"^-- name: ", text, flags=re.M)[1:]:
            name, _, body = block.partition("\n")
            name = name.strip()
            if name in queries:
                raise RuntimeError(f"query {name!r} is defined twice (second time in {entry.name})")
            queries[name] = body.strip()
    return queries


QUERIES = _load_queries()
