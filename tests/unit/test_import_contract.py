"""The package's layering, read from the code's own imports (every `import`, wherever it stands).

- `server` (HTTP) and `worker` (the queue's consumers) meet only through the job row: neither
  imports the other;
- `providers` know nothing of jobs, slots or settings: they import no domain module;
- no module imports, directly or through others, a module that imports it back.

A new import that breaks one of these fails here, naming the modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "photoslot"
# What the providers may build on: their own package and plain infrastructure.
PROVIDER_ALLOWED = ("photoslot.providers",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The photoslot modules `path` imports (`from photoslot import x` counts as photoslot.x)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `photoslot.x.func` → photoslot.x
                name = name.rpartition(".")[0]
            if name and name != "photoslot":
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: imports_of(path, modules) - {name} for name, path in files.items()}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_server_and_worker_never_import_each_other():
    g = graph()
    crossings = [(a, b) for a, deps in g.items() for b in deps
                 if (within(a, "photoslot.server") and within(b, "photoslot.worker"))
                 or (within(a, "photoslot.worker") and within(b, "photoslot.server"))]
    assert crossings == []


def test_providers_import_no_domain_module():
    g = graph()
    leaks = [(a, b) for a, deps in g.items() if within(a, "photoslot.providers")
             for b in deps if not any(within(b, ok) for ok in PROVIDER_ALLOWED)]
    assert leaks == []


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_anywhere_in_the_package():
    assert cycles(graph()) == []


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle(edges, expected):
    assert cycles(edges) == expected


def test_an_import_inside_a_function_counts(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from photoslot.server import app\n", encoding="utf-8")
    assert imports_of(source, {"photoslot.server", "photoslot.server.app"}) == {"photoslot.server",
                                                                               "photoslot.server.app"}
