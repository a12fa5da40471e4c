"""The package's layers as code sees them: no import cycles between its modules.

The layers themselves (which subpackage may import which, and that only ``plugin`` imports
pytest) are import-linter contracts in ``pyproject.toml``, checked by ``lint-imports`` in CI.
"""

from __future__ import annotations

import grimp

PACKAGE = "pytest_onnxparity"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module: each one is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def package_imports() -> dict[str, set[str]]:
    built = grimp.build_graph(PACKAGE)
    modules = {m for m in built.modules if m.startswith(PACKAGE)}
    return {m: built.find_modules_directly_imported_by(m) & modules for m in modules}


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    assert strongly_connected(package_imports()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
