"""The Python snippets of the README and docs/: each compiles and imports only the public API, and
the ones that need nothing beyond the bundled example run against it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

import pytest_onnxparity
from tests.conftest import RunPytest
from tests.paths import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(document: Path) -> list[str]:
    return CODE_BLOCK.findall(document.read_text(encoding="utf-8"))


def block_id(document: Path, index: int) -> str:
    return f"{document.relative_to(REPO)}#{index}"


SNIPPETS = [
    pytest.param(block, id=block_id(document, index))
    for document in DOCUMENTS
    for index, block in enumerate(python_blocks(document))
]


def plugin_imports(tree: ast.AST) -> list[ast.ImportFrom]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pytest_onnxparity")
    ]


@pytest.mark.parametrize("snippet", SNIPPETS)
def test_every_snippet_compiles_and_imports_only_the_public_api(snippet: str) -> None:
    # A trailing `...` body or an elided argument list is valid Python; a typo is not.
    tree = ast.parse(snippet)
    for node in plugin_imports(tree):
        assert node.module == "pytest_onnxparity", f"deep import {node.module}: use the public API"
        for alias in node.names:
            assert alias.name in pytest_onnxparity.__all__, alias.name
            assert getattr(pytest_onnxparity, alias.name) is not None


def test_the_snippets_were_found() -> None:
    assert len(SNIPPETS) >= 8


def readme_block(marker: str) -> str:
    """The README's Python block containing ``marker``."""
    (block,) = [b for b in python_blocks(REPO / "README.md") if marker in b]
    return block


def test_the_readme_gates_in_a_test_module_pass_on_the_bundled_example(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    pytester.makepyfile(test_gates=readme_block("def test_encoder_variants"))

    result = run("--onnx-dir", str(export_copy), "test_gates.py", "-v")

    # The README's 5 tests (encoder int8 and int4; every classifier variant) beside the 12 that
    # the export folder generates (a parity and a weights test per variant).
    result.assert_outcomes(passed=17)
    result.stdout.fnmatch_lines(
        [
            "PASSED test_gates.py::test_encoder_variants[[]encoder-int4[]]",
            "PASSED test_gates.py::test_encoder_variants[[]encoder-int8[]]",
            "PASSED test_gates.py::test_top1_unchanged[[]classifier-fp16[]]",
        ]
    )


def test_the_metadata_hook_of_the_results_doc_edits_the_block(
    run: RunPytest, pytester: pytest.Pytester, export_copy: Path
) -> None:
    (hook,) = [b for b in python_blocks(REPO / "docs" / "results.md") if "update_metadata" in b]
    pytester.makeconftest(hook)
    metadata = pytester.path / "metadata.json"

    run("--onnx-dir", str(export_copy), "--parity-metadata", str(metadata)).assert_outcomes(
        passed=12
    )

    block = json.loads(metadata.read_text())
    assert block["model"] == "org/tiny-encoder@v2"
    assert "cpu" not in block["toolchain"]


HOOK_SNIPPETS = [
    pytest.param(snippet, id=param_id)
    for snippet, param_id in ((p.values[0], p.id) for p in SNIPPETS)
    if "def pytest_onnxparity_" in snippet
]


@pytest.mark.parametrize("snippet", HOOK_SNIPPETS)
def test_every_documented_hook_implementation_is_marked_optional(snippet: str) -> None:
    """Copied into a conftest.py, it must not stop a run with ``-p no:onnxparity``."""
    for node in ast.walk(ast.parse(snippet)):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("pytest_onnxparity_"):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            assert "pytest.hookimpl(optionalhook=True)" in decorators, node.name


def test_the_hook_snippets_were_found() -> None:
    assert len(HOOK_SNIPPETS) >= 4
