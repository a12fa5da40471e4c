"""Tests for quantization coverage: the table on onnxruntime's quantizers, and its gates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import modelkit
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.diagnose.coverage import (
    CoverageOptions,
    CoverageReport,
    OpCoverage,
    coverage_check,
    measure_coverage,
    parse_coverage_options,
    summary_lines,
)

WHERE = "parity.toml [health]"
RNG = np.random.default_rng(0)


def save_graph(
    path: Path,
    nodes: Sequence[onnx.NodeProto],
    initializers: Mapping[str, np.ndarray],
    inputs: Sequence[tuple[str, int, Sequence[int | None]]] = (
        ("x", TensorProto.FLOAT, [None, 4]),
    ),
) -> Path:
    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info(name, dtype, shape) for name, dtype, shape in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in initializers.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def two_matmuls(path: Path) -> Path:
    """``y = (x @ W1) @ W2`` with float weights."""
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="first"),
        helper.make_node("MatMul", ["h", "W2"], ["y"], name="second"),
    ]
    weights = {"W1": RNG.standard_normal((4, 4)), "W2": RNG.standard_normal((4, 4))}
    return save_graph(path, nodes, {k: v.astype(np.float32) for k, v in weights.items()})


def only_w1_quantized(path: Path) -> Path:
    """``two_matmuls`` with W1 read through QDQ and W2 left float."""
    nodes = [
        helper.make_node(
            "DequantizeLinear",
            ["W1_quantized", "W1_scale", "W1_zero_point"],
            ["W1_dq"],
            name="W1_DequantizeLinear",
        ),
        helper.make_node("MatMul", ["x", "W1_dq"], ["h"], name="first"),
        helper.make_node("MatMul", ["h", "W2"], ["y"], name="second"),
    ]
    initializers = {
        "W1_quantized": RNG.integers(-127, 127, (4, 4)).astype(np.int8),
        "W1_scale": np.float32(0.01),
        "W1_zero_point": np.int8(0),
        "W2": RNG.standard_normal((4, 4)).astype(np.float32),
    }
    return save_graph(path, nodes, initializers)


# --------------------------------------------------------------------------------------------
# onnxruntime's quantizers on TinyMLP
# --------------------------------------------------------------------------------------------


MLP_WEIGHTS = ("layers.0.weight", "layers.2.weight", "layers.4.weight")


@pytest.mark.parametrize(
    ("variant", "form"),
    [
        ("int8", "MatMulInteger"),  # quantize_dynamic
        ("qdq", "DequantizeLinear"),  # quantize_static, QDQ format
        ("int4", "MatMulNBits"),  # MatMulNBitsQuantizer
        ("fp16", "float16"),  # convert_float_to_float16
    ],
)
def test_every_mlp_matmul_weight_is_quantized_in_the_onnxruntime_variant(
    mlp_export: Path, variant: str, form: str
) -> None:
    report = measure_coverage(
        mlp_export / "mlp.onnx", mlp_export / modelkit.variant_filename("mlp", variant)
    )
    assert report.rows == (
        OpCoverage("MatMul", weights=3, quantized=3, float_names=(), quantized_as={form: 3}),
    )
    assert report.fraction() == 1.0
    assert report.table_lines()[2].split() == ["MatMul", "3", "3", "(100%)", f"{form}=3", "-"]


def test_the_reference_against_itself_is_all_float(mlp_export: Path) -> None:
    report = measure_coverage(mlp_export / "mlp.onnx", mlp_export / "mlp.onnx")
    assert report.rows[0].float_names == MLP_WEIGHTS
    assert report.fraction() == 0.0


def embedding_then_matmul(path: Path) -> Path:
    """``y = E[ids] @ W``: an embedding table read by Gather, then a projection."""
    nodes = [
        helper.make_node("Gather", ["E", "ids"], ["h"], name="embed"),
        helper.make_node("MatMul", ["h", "W"], ["y"], name="proj"),
    ]
    weights = {"E": RNG.standard_normal((10, 4)), "W": RNG.standard_normal((4, 3))}
    initializers = {name: value.astype(np.float32) for name, value in weights.items()}
    return save_graph(path, nodes, initializers, [("ids", TensorProto.INT64, [None])])


def test_quantize_dynamic_gathers_integer_embedding_rows_and_counts_them_quantized(
    tmp_path: Path,
) -> None:
    reference = embedding_then_matmul(tmp_path / "ref.onnx")
    variant = modelkit.quantize_int8_dynamic(reference, tmp_path / "int8.onnx")
    report = measure_coverage(reference, variant)
    assert report.row("Gather") == OpCoverage("Gather", 1, 1, (), {"uint8": 1})
    assert report.row("MatMul") == OpCoverage("MatMul", 1, 1, (), {"MatMulInteger": 1})


def test_int4_matmulnbits_leaves_conv_weights_float(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "K"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "W"], ["y"], name="proj"),
    ]
    initializers = {
        "K": RNG.standard_normal((2, 1, 3, 3)).astype(np.float32),
        "W": RNG.standard_normal((32, 8)).astype(np.float32),
    }
    reference = save_graph(
        tmp_path / "cnn.onnx", nodes, initializers, [("x", TensorProto.FLOAT, [1, 1, 4, 4])]
    )
    variant = modelkit.quantize_int4_matmulnbits(reference, tmp_path / "cnn_int4.onnx")
    report = measure_coverage(reference, variant)
    assert [row.to_json() for row in report.rows] == [
        {
            "op_type": "Conv",
            "weights": 1,
            "quantized": 0,
            "quantized_as": {},
            "float_names": ["K"],
            "missing_names": [],
        },
        {
            "op_type": "MatMul",
            "weights": 1,
            "quantized": 1,
            "quantized_as": {"MatMulNBits": 1},
            "float_names": [],
            "missing_names": [],
        },
    ]
    assert report.fraction() == 0.5


# --------------------------------------------------------------------------------------------
# Finding weights and their forms
# --------------------------------------------------------------------------------------------


def test_an_embedding_tied_to_the_output_projection_counts_each_use_by_its_own_form(
    tmp_path: Path,
) -> None:
    table = RNG.standard_normal((10, 4)).astype(np.float32)
    ids = [("ids", TensorProto.INT64, [None])]
    reference = save_graph(
        tmp_path / "ref.onnx",
        [
            helper.make_node("Gather", ["E", "ids"], ["h"], name="embed"),
            helper.make_node("Transpose", ["E"], ["E_t"], name="tie"),
            helper.make_node("MatMul", ["h", "E_t"], ["y"], name="lm_head"),
        ],
        {"E": table},
        ids,
    )
    variant = save_graph(
        tmp_path / "variant.onnx",
        [
            helper.make_node("Gather", ["E", "ids"], ["h"], name="embed"),
            helper.make_node("DequantizeLinear", ["E_quantized", "E_scale"], ["E_dq"], name="dq"),
            helper.make_node("Transpose", ["E_dq"], ["E_t"], name="tie"),
            helper.make_node("MatMul", ["h", "E_t"], ["y"], name="lm_head"),
        ],
        {"E": table, "E_quantized": np.zeros((10, 4), np.int8), "E_scale": np.float32(0.1)},
        ids,
    )
    report = measure_coverage(reference, variant)
    assert report.row("Gather") == OpCoverage("Gather", 1, 0, ("E",), {})
    assert report.row("MatMul") == OpCoverage("MatMul", 1, 1, (), {"DequantizeLinear": 1})


def test_a_weight_gone_from_the_variant_is_reported_missing(tmp_path: Path) -> None:
    reference = two_matmuls(tmp_path / "ref.onnx")
    model = onnx.load(reference)
    for tensor in model.graph.initializer:
        tensor.name = tensor.name.replace("W2", "renamed")
    for node in model.graph.node:
        node.input[:] = [name.replace("W2", "renamed") for name in node.input]
    variant = tmp_path / "variant.onnx"
    onnx.save(model, variant)
    row = measure_coverage(reference, variant).row("MatMul")
    assert row is not None
    assert (row.float_names, row.missing_names, row.quantized) == (("W1",), ("W2",), 0)
    assert "W2 (missing)" in CoverageReport((row,)).table_lines()[2]


def test_report_json_is_plain_and_the_table_has_a_total(tmp_path: Path) -> None:
    report = measure_coverage(
        two_matmuls(tmp_path / "r.onnx"), only_w1_quantized(tmp_path / "v.onnx")
    )
    document = report.to_json()
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert document["fraction"] == 0.5
    assert report.table_lines() == [
        "op type  weights  quantized  as                  not quantized",
        "-------  -------  ---------  ------------------  -------------",
        "MatMul   2        1 (50%)    DequantizeLinear=1  W2",
        "total    2        1 (50%)",
    ]


def test_the_summary_table_has_a_row_per_variant_and_op_type_from_the_records(
    tmp_path: Path,
) -> None:
    reference = two_matmuls(tmp_path / "r.onnx")
    partial = coverage_check(
        reference,
        only_w1_quantized(tmp_path / "v.onnx"),
        graph="g",
        variant="int8",
        options=CoverageOptions(),
    )
    record = {"kind": "check", "nodeid": "x", **partial.to_json()}
    conv = {"op_type": "Conv", "weights": 1, "quantized": 1, "quantized_as": {"float16": 1}}
    two_ops = {
        **record,
        "variant": "fp16",
        "details": {
            "weights": 3,
            "quantized": 3,
            "rows": [
                {**conv, "float_names": [], "missing_names": []},
                {
                    "op_type": "MatMul",
                    "weights": 2,
                    "quantized": 2,
                    "quantized_as": {"float16": 2},
                    "float_names": [],
                    "missing_names": [],
                },
            ],
        },
    }
    failed_to_run = {**record, "variant": "int4", "passed": False, "details": {}}
    other = {"kind": "check", "check": "health:opset", "graph": "g", "variant": "int8"}
    assert summary_lines([record, two_ops, failed_to_run, other]) == [
        "graph  variant  op type  weights  quantized  as                  not quantized",
        "-----  -------  -------  -------  ---------  ------------------  -------------",
        "g      int8     MatMul   2        1 (50%)    DequantizeLinear=1  W2",
        "g      fp16     Conv     1        1 (100%)   float16=1           -",
        "g      fp16     MatMul   2        2 (100%)   float16=2           -",
        "g      fp16     all      3        3 (100%)",
    ]
    assert summary_lines([other]) == []


def test_a_reference_without_weights_is_fully_covered_by_definition() -> None:
    assert CoverageReport(()).fraction() == 1.0


# --------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------


def test_unquantized_matmul_fails_require_quantized_naming_the_weight_and_its_node(
    tmp_path: Path,
) -> None:
    reference = two_matmuls(tmp_path / "ref.onnx")
    variant = only_w1_quantized(tmp_path / "variant.onnx")
    result = coverage_check(
        reference,
        variant,
        graph="g",
        variant="int8",
        options=CoverageOptions(require_quantized=("MatMul",)),
    )
    assert not result.passed
    assert result.check == "coverage"
    lines = result.message.splitlines()
    assert lines[0].startswith(
        f"{variant}: require_quantized: 1/2 MatMul weights not quantized; quantize these weights"
    )
    assert lines[1] == "  W2: float, read by second (MatMul)"
    assert result.details == measure_coverage(reference, variant).to_json()


def test_min_quantized_fraction_fails_below_the_limit_and_passes_at_it(tmp_path: Path) -> None:
    reference = two_matmuls(tmp_path / "ref.onnx")
    variant = only_w1_quantized(tmp_path / "variant.onnx")

    def gate(limit: float) -> tuple[bool, str]:
        options = CoverageOptions(min_quantized_fraction=limit)
        result = coverage_check(reference, variant, graph="g", variant="v", options=options)
        return result.passed, result.message

    passed, message = gate(0.9)
    assert not passed
    assert "1/2 weight tensors quantized (50%), below min_quantized_fraction 0.9" in message
    assert "  W2: float, read by second (MatMul)" in message
    assert gate(0.5) == (True, "")


def test_requiring_an_op_the_reference_lacks_passes_with_a_warning(tmp_path: Path) -> None:
    reference = two_matmuls(tmp_path / "ref.onnx")
    result = coverage_check(
        reference,
        only_w1_quantized(tmp_path / "variant.onnx"),
        graph="g",
        variant="v",
        options=CoverageOptions(require_quantized=("Conv",)),
    )
    assert result.passed
    assert result.warnings == (
        "require_quantized names Conv, but the reference has no Conv weights",
    )


def test_coverage_options_read_their_keys_and_leave_the_rest_to_the_health_parser() -> None:
    raw = {"min_quantized_fraction": 1, "require_quantized": ["MatMul", "Conv"], "opset": 20}
    assert parse_coverage_options(raw, WHERE) == CoverageOptions(1.0, ("MatMul", "Conv"))
    assert parse_coverage_options({}, WHERE) == CoverageOptions()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"min_quantized_fraction": 1.5}, "min_quantized_fraction must be a number from 0 to 1"),
        ({"min_quantized_fraction": "90%"}, "min_quantized_fraction must be a number from 0 to 1"),
        ({"min_quantized_fraction": True}, "min_quantized_fraction must be a number from 0 to 1"),
        ({"require_quantized": "MatMul"}, "require_quantized must be a list of op types"),
    ],
)
def test_bad_coverage_values_are_errors_naming_the_source_and_key(
    raw: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_coverage_options(raw, WHERE)
    assert str(error.value).startswith(f"{WHERE}: {expected}")
