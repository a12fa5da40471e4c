"""The ``weights`` check as a result record, its terminal table, and the two places that reuse
its matching: ``health-initializers`` (no longer blind to a weight that is far off without
being constant) and the coverage table (a weight parity column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import modelkit
import numpy as np
import pytest
import weightkit
from onnx import TensorProto

from pytest_onnxparity.compare.weight_space import WeightSettings
from pytest_onnxparity.diagnose.coverage import CoverageOptions, coverage_check, summary_lines
from pytest_onnxparity.diagnose.health.config import HealthOptions
from pytest_onnxparity.diagnose.health.run import run_health_check
from pytest_onnxparity.diagnose.weights import summary_lines as weights_summary_lines
from pytest_onnxparity.diagnose.weights import weights_check

RNG = np.random.default_rng(5)


@pytest.fixture
def wrong_sign_table(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An embedding, its int4 GatherBlockQuantized table, and the same table written with the
    wrong sign convention (signed nibbles stored as UINT4)."""
    table = RNG.standard_normal((20, 64)).astype(np.float32)
    reference = weightkit.gather_reference(tmp_path / "ref.onnx", table)
    healthy = weightkit.gather_block_quantized_variant(tmp_path / "int4.onnx", table)
    q = weightkit.initializer(healthy, "E_Q4").astype(np.int64)
    wrong = weightkit.packed_tensor("E_Q4", TensorProto.UINT4, q & 0x0F)
    damaged = weightkit.rewrite_tensor(healthy, tmp_path / "damaged.onnx", "E_Q4", wrong)
    return reference, healthy, damaged


def check(reference: Path, variant: Path) -> dict[str, Any]:
    result = weights_check(
        reference, variant, graph="g", variant="int4", tier="int4", settings=WeightSettings()
    )
    return {"kind": "check", "nodeid": f"x::weights[{variant.stem}]", **result.to_json()}


def test_health_initializers_sees_a_table_stored_with_the_wrong_sign_convention(
    wrong_sign_table: tuple[Path, Path, Path],
) -> None:
    reference, healthy, damaged = wrong_sign_table

    def initializers(variant: Path) -> Any:
        return run_health_check(
            "initializers",
            variant,
            graph="g",
            variant="int4",
            reference_path=reference,
            options=HealthOptions(),
        )

    assert initializers(healthy).passed
    result = initializers(damaged)
    assert not result.passed
    assert "  E -> E_Q4 as GatherBlockQuantized: off by rel_l2 " in result.message
    assert "(above 0.5, any tier's limit), read by embed_Q4" in result.message


def test_the_coverage_table_tells_the_wrong_sign_convention_from_the_right_one(
    wrong_sign_table: tuple[Path, Path, Path],
) -> None:
    reference, healthy, damaged = wrong_sign_table
    records = []
    for variant in (healthy, damaged):
        coverage = coverage_check(
            reference, variant, graph="g", variant=variant.stem, options=CoverageOptions()
        )
        records += [
            {"kind": "check", "nodeid": "x", **coverage.to_json()},
            check(reference, variant),
        ]
    records[1]["variant"], records[3]["variant"] = "int4", "damaged"
    lines = summary_lines(records)
    assert lines[0].split() == [
        "graph",
        "variant",
        "op",
        "type",
        "weights",
        "quantized",
        "as",
        "weight",
        "parity",
        "not",
        "quantized",
    ]
    int4, damaged_row = lines[2], lines[3]
    assert "GatherBlockQuantized=1" in int4 and "ok, rel_l2 <= 0.0" in int4
    assert "GatherBlockQuantized=1" in damaged_row and "1 off, rel_l2 " in damaged_row


def test_the_record_holds_every_number_and_the_table_names_the_worst_weight(
    wrong_sign_table: tuple[Path, Path, Path],
) -> None:
    reference, _, damaged = wrong_sign_table
    record = check(reference, damaged)
    assert record["check"] == "weights" and not record["passed"]
    assert record["details"]["failed"] == 1 and record["details"]["tier"] == "int4"
    (weight,) = record["details"]["weights"]
    assert weight["reference"] == "E" and weight["storage"] == "GatherBlockQuantized"
    (line,) = weights_summary_lines([record])[2:]
    assert line.split()[:7] == ["g", "int4", "int4", "1", "1", "0%", "FAIL"]
    assert line.endswith("> 0.5 (E)")


def test_external_data_is_streamed_and_a_missing_sidecar_is_named(tmp_path: Path) -> None:
    weight = RNG.standard_normal((64, 16)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    int8 = modelkit.quantize_int8_dynamic(reference, tmp_path / "int8.onnx")
    external = modelkit.save_with_external_data(int8, tmp_path / "ext" / "int8.onnx")
    assert check(reference, external)["passed"]
    (tmp_path / "ext" / "int8.onnx.data").unlink()
    record = check(reference, external)
    assert not record["passed"]
    assert "copy the complete external data file(s) next to the model" in record["message"]
