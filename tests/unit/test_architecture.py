"""The package's layout as code sees it: no import cycles, small modules that say what they are
for, a public API that resolves, and the 0.1 module paths still importable.

The layers themselves (which subpackage may import which, and that only ``plugin`` imports
pytest) are import-linter contracts in ``pyproject.toml``, checked by ``lint-imports`` in CI.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import grimp
import pytest

import pytest_onnxparity
from pytest_onnxparity import _moved

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


PACKAGE_DIR = Path(pytest_onnxparity.__file__).parent
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))
MAX_LINES = 400


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_every_module_is_small_and_says_what_it_is_for(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name}: split it by job"
    assert ast.get_docstring(ast.parse(text)), f"{path.name}: no module docstring"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_no_module_of_the_package_imports_its_public_api(path: Path) -> None:
    """The top-level names are for users; inside, a module imports the module that defines it."""
    if path == PACKAGE_DIR / "__init__.py":
        return
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.module != PACKAGE, f"{path.name}:{node.lineno}"


def test_every_public_name_resolves_to_the_module_it_names() -> None:
    assert sorted(pytest_onnxparity.__all__) == sorted(["__version__", *pytest_onnxparity.PUBLIC])
    for name, module in pytest_onnxparity.PUBLIC.items():
        value = getattr(pytest_onnxparity, name)
        assert value.__module__ == f"{PACKAGE}.{module}", name


def test_the_0_1_module_paths_still_import_with_a_warning_naming_the_new_home() -> None:
    with pytest.warns(DeprecationWarning, match=r"pytest_onnxparity\.sessions moved to .*runtime"):
        from pytest_onnxparity.sessions import OnnxRunner  # type: ignore[import-not-found]
    assert OnnxRunner is pytest_onnxparity.OnnxRunner
    with pytest.warns(DeprecationWarning, match=r"pytest_onnxparity\.config moved"):
        from pytest_onnxparity.config import ConfigError
    assert ConfigError.__module__ == "pytest_onnxparity.config.tables"


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_every_moved_module_names_homes_that_exist(old: str) -> None:
    for home in _moved.MOVED[old]:
        importlib.import_module(f"{PACKAGE}.{home}")
