"""docs/architecture.md matches the code: every module and name it points at exists, and its
layer diagram lists the layers of the import-linter contract."""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from tests.paths import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DOC = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
PACKAGE = REPO / "pytest_onnxparity"
# compare/metrics.compare_outputs, run/settings.build_settings, plugin/main.py
DOTTED = re.compile(r"\b((?:[a-z_]+/)+[a-z_]+)(?:\.py)?(?:\.([A-Za-z_][\w.]*[A-Za-z_0-9]))?")


def references() -> list[tuple[str, str | None]]:
    found = []
    for path, name in DOTTED.findall(DOC):
        if (PACKAGE / f"{path}.py").exists() or (PACKAGE / path).is_dir():
            found.append((path.replace("/", "."), name or None))
    return sorted(set(found), key=lambda ref: (ref[0], ref[1] or ""))


@pytest.mark.parametrize(("module", "name"), references())
def test_every_module_and_name_the_doc_points_at_exists(module: str, name: str | None) -> None:
    target: object = importlib.import_module(f"pytest_onnxparity.{module}")
    for part in (name or "").split(".") if name else []:
        target = getattr(target, part)


def test_the_doc_points_at_enough_of_the_code_to_be_checked() -> None:
    assert len(references()) >= 30


def test_the_layer_diagram_lists_every_layer_of_the_contract() -> None:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in contracts["contracts"] if c["type"] == "layers"]
    diagram = DOC.split("```")[1]
    for layer in layers:
        for package in layer.split("|"):
            assert f"{package.strip()}/" in diagram, package


def doc_module_lists() -> dict[str, set[str]]:
    """``{folder: names}`` from every table row that starts with a folder (``compare/``,
    ``diagnose/health/``, ``pytest_onnxparity/``): the names in its last cell."""
    listed: dict[str, set[str]] = {}
    for line in DOC.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        folder = re.fullmatch(r"`([\w/]+/)`", cells[0]) if line.startswith("| `") else None
        if folder is not None:
            listed[folder.group(1)] = set(re.findall(r"`([\w/]+)`", cells[-1]))
    return listed


def package_module_lists() -> dict[str, set[str]]:
    """What the doc must list: the package's top-level modules, and for every folder below it
    the modules and folders it holds (``__init__`` and caches left out)."""
    found = {"pytest_onnxparity/": {path.stem for path in PACKAGE.glob("*.py")}}
    for folder in sorted(path for path in PACKAGE.rglob("*") if path.is_dir()):
        if folder.name == "__pycache__":
            continue
        names = {path.stem for path in folder.glob("*.py") if path.stem != "__init__"}
        names |= {f"{sub.name}/" for sub in folder.iterdir() if sub.is_dir()}
        found[f"{folder.relative_to(PACKAGE).as_posix()}/"] = names - {"__pycache__/"}
    return found


def test_the_doc_names_every_module_of_every_folder_and_no_other() -> None:
    listed = doc_module_lists()
    for folder, names in package_module_lists().items():
        if not names:
            continue  # a data folder (suites/shipped/): named by its parent's row
        assert listed.get(folder) == names, folder
