"""The shape of the package, kept: no import cycles between looplab's modules, none over ~400 lines, and
every subpackage says in its docstring what job it holds (docs/structure.md is the map)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "looplab"
MAX_LINES = 400
NOT_IMPORTED = {"standins", "runners", "__pycache__"}  # files the evaluator's process runs, not looplab's


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if NOT_IMPORTED & set(path.relative_to(PACKAGE).parts):
            continue
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports_at_load(path: Path, modules: dict[str, Path]) -> set[str]:
    """looplab modules imported when this one loads (imports inside functions are deliberately lazy)."""
    deps = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("looplab"):
            for alias in node.names:  # `from pkg import submodule` depends on the submodule, not on pkg's body
                sub = f"{node.module}.{alias.name}"
                deps.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.startswith("looplab"))
    return {d for d in deps if d in modules}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_looplab_modules():
    modules = _modules()
    graph = {name: _imports_at_load(path, modules) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_the_size_a_reader_holds_at_once():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_every_subpackage_says_what_job_it_holds():
    packages = [p for p in PACKAGE.rglob("__init__.py") if not NOT_IMPORTED & set(p.parts)]
    silent = [str(p.parent.relative_to(PACKAGE)) for p in packages if not ast.get_docstring(ast.parse(p.read_text()))]
    assert silent == []
