"""The house rules of the package, read off its source: no import circles, no overlong modules.

Imports are read from the `ast` of every module under src/nasforge: those at module level and
those inside functions and methods (lazy imports run too, only later), so a circle hidden behind a
function-level import is still a circle. Imports under `if TYPE_CHECKING:` are left out: they
never execute (type checkers read them, and `from __future__ import annotations` keeps the names
unevaluated).

An edge goes from a module to the module an import names: `import a.b` and `from a.b import c`
to a.b, and `from a.b import c` also to a.b.c when that is a module (`from . import study`).
The parent packages an import also runs (a/__init__ for `import a.b`) are not edges: every
module would otherwise depend on nasforge/__init__, which imports the public API.

A module over MAX_LINES lines says why in its docstring, on a line starting with "Long module:".
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nasforge"
MAX_LINES = 400


def module_files() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its __init__.py)."""
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, anywhere in it, except under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # `else:` of TYPE_CHECKING runs
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    mods = module_files()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for node in imports_of(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                target = _target(module, path.name == "__init__.py", node)
                names = [target] + [f"{target}.{alias.name}" for alias in node.names]
            graph[module].update(n for n in names if n in mods and n != module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def circle_in(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete circle through a component's first module, for the failure message."""
    start = component[0]
    members = set(component)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in members)
        if start in nxt and len(path) > 1:
            return [*path, start]
        fresh = [w for w in nxt if w not in seen]
        if not fresh:
            # A component always has a circle through `start`: breadth-first from it back to it.
            return _shortest_circle(start, members, graph)
        path.append(fresh[0])
        seen.add(fresh[0])


def _shortest_circle(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w not in members:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), v, start] if v != start else [start, start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def test_the_graph_reads_lazy_imports_and_skips_type_checking_ones():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "if TYPE_CHECKING:\n"
        "    from .study import Study\n"
        "else:\n"
        "    from .store import Store\n"
        "def f():\n"
        "    from .export import load\n"
    )
    names = [getattr(node, "module", None) or node.names[0].name for node in imports_of(tree)]
    assert names == ["typing", "os", "store", "export"]
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert circle_in(["a", "b", "c"], graph) == ["a", "b", "c", "a"]


def test_package_has_no_import_circles():
    graph = import_graph()
    assert "nasforge.study" in graph and "nasforge.api" in graph  # the walk found the package
    found = cycles(graph)
    message = "\n".join(f"{len(c)} modules: {', '.join(c)}\n    e.g. {' -> '.join(circle_in(c, graph))}" for c in found)
    assert not found, f"import circles (lazy imports included):\n{message}"


def test_long_modules_say_why():
    unexplained = []
    for path in module_files().values():
        source = path.read_text(encoding="utf-8")
        lines = source.count("\n")
        if lines <= MAX_LINES:
            continue
        doc = ast.get_docstring(ast.parse(source)) or ""
        if not any(line.strip().startswith("Long module:") for line in doc.splitlines()):
            unexplained.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines")
    assert not unexplained, (f"modules over {MAX_LINES} lines without a reason: split them along their seams, or say why "
                             "each is one module on a docstring line starting with 'Long module:'\n" + "\n".join(unexplained))
