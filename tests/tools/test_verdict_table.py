"""The verdict table script (benchmarks/verdict_table.py) on a case of the bundled example: one
zero-configuration run, read back from its JSON into a row, rendered as a Markdown row."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from tests.paths import EXAMPLE, REPO


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "verdict_table", REPO / "benchmarks" / "verdict_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_case_run_becomes_a_row_of_the_verdict_table(tmp_path: Path) -> None:
    table = load_script()
    folder = tmp_path / "case"
    folder.mkdir()
    for name in ("classifier.onnx", "classifier_int8.onnx"):
        shutil.copyfile(EXAMPLE / name, folder / name)
    case = table.verdict_corpus.Case(
        name="classifier int8",
        family="example",
        folder=folder,
        reference="classifier.onnx",
        variant="classifier_int8.onnx",
        tool="onnxruntime quantize_dynamic",
        damage="",
    )
    (tmp_path / "json").mkdir()

    row = table.measure(case, tmp_path)

    assert row["verdict"] == "pass" and row["expected"] == "pass"
    assert row["weights"]["passed"] and row["weights"]["failed"] == []
    assert 0 < row["weights"]["worst_rel_l2"] < 0.5
    default = row["outputs"]["default"]
    assert default["passed"] and 0 < default["worst_rel_l2"] < 0.1
    assert row["task"] is None  # no suite gives the example a task-level number
    meta = {
        "commit": "abc1234",
        "machine": "2 CPUs",
        "onnxruntime": "1",
        "torch": "2",
        "seconds": 1.0,
        "json": "benchmarks/results/abc1234-verdicts.json",
    }
    lines = table.markdown([row], meta).splitlines()
    (line,) = [line for line in lines if line.startswith("| **classifier int8**")]
    assert line.endswith("| pass | PASS ✓ |")
    assert "1 of 1 verdicts as expected." in lines
