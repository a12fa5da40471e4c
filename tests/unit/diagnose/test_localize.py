"""Tests for localization (which node of a variant is damaged, where its drift shows) on the
tiny MLP and hand-built graphs, its report and its plot."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import modelkit
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.config.tables import ConfigError
from pytest_onnxparity.diagnose.localize.config import (
    LOCALIZE_KEYS,
    LocalizeOptions,
    parse_localize_options,
)
from pytest_onnxparity.diagnose.localize.measure import localize
from pytest_onnxparity.diagnose.localize.plot import (
    PlotUnavailableError,
    drift_plot_path,
    plot_drift,
)
from pytest_onnxparity.diagnose.localize.records import Localization, TensorDrift
from pytest_onnxparity.diagnose.localize.report import message_lines, summary_line
from pytest_onnxparity.runtime.sessions import ModelLoadError

MLP_MATMULS = ("/layers/layers.0/MatMul", "/layers/layers.2/MatMul", "/layers/layers.4/MatMul")
MLP_ACTIVATIONS = 8


def mlp(mlp_export: Path, variant: str = "fp32") -> Path:
    return mlp_export / modelkit.variant_filename("mlp", variant)


@pytest.fixture(scope="session")
def mlp_inputs() -> dict[str, np.ndarray]:
    module = modelkit.TinyMLP()
    return {name: t.numpy() for name, t in module.example_inputs(batch=8, seed=1).items()}


def run_localize(
    reference: Path,
    variant: Path,
    inputs: dict[str, np.ndarray],
    workdir: Path,
    **options: Any,
) -> Localization:
    return localize(
        reference,
        variant,
        inputs,
        graph="mlp",
        variant=variant.stem,
        options=LocalizeOptions(**options),
        workdir=workdir,
    )


def damaged(mlp_export: Path, tmp_path: Path, weight: str, mode: str, factor: float) -> Path:
    return modelkit.damage_initializer(
        mlp(mlp_export), tmp_path / f"mlp_damaged_{weight}.onnx", weight, mode=mode, factor=factor
    )


def is_plain_json(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_plain_json(item) for item in value)
    return value is None or type(value) in (str, int, float, bool)


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def test_an_empty_localize_table_gives_the_defaults() -> None:
    assert parse_localize_options({}, "parity.toml [localize]") == LocalizeOptions()


def test_every_localize_key_is_read_from_the_table() -> None:
    raw = {
        "auto": True,
        "tolerance_rel_l2": 1,
        "damage_ratio": 5,
        "top_n": 3,
        "memory_mb": 512,
        "batch_size": 16,
        "graph_optimization_level": "all",
        "plot_format": "svg",
    }
    options = parse_localize_options(raw, "parity.toml [localize]")
    assert options == LocalizeOptions(
        1.0, 3, 16, "all", "svg", auto=True, memory_mb=512, damage_ratio=5.0
    )
    assert options.memory_budget_mb == 512
    assert set(options.to_json()) == set(LOCALIZE_KEYS)


def test_an_unknown_localize_key_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as error:
        parse_localize_options({"tolerance": 0.1}, "parity.toml [localize]")
    assert str(error.value) == (
        "parity.toml [localize]: unknown key 'tolerance'; allowed keys: "
        "auto, tolerance_rel_l2, damage_ratio, top_n, memory_mb, batch_size, "
        "graph_optimization_level, plot_format"
    )


def test_the_default_memory_budget_is_an_eighth_of_the_machine_and_at_least_256_mb() -> None:
    import os

    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    budget = LocalizeOptions().memory_budget_mb
    assert budget == max(256, int(total_mb / 8))
    assert LocalizeOptions().to_json()["memory_mb"] is None


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("tolerance_rel_l2", 0, "tolerance_rel_l2 must be a number > 0"),
        ("tolerance_rel_l2", "5%", "tolerance_rel_l2 must be a number > 0"),
        ("tolerance_rel_l2", float("inf"), "tolerance_rel_l2 must be a number > 0"),
        ("top_n", 0, "top_n must be an integer >= 1, got 0"),
        ("batch_size", 2.5, "batch_size must be an integer >= 1, got 2.5"),
        ("batch_size", True, "batch_size must be an integer >= 1, got True"),
        ("memory_mb", 0, "memory_mb must be an integer >= 1, got 0"),
        ("memory_mb", "1GB", "memory_mb must be an integer >= 1, got '1GB'"),
        ("damage_ratio", 1, "damage_ratio must be a number > 1 (e.g. 8), got 1"),
        ("damage_ratio", float("nan"), "damage_ratio must be a number > 1"),
        ("graph_optimization_level", "max", "must be one of disable, basic, extended, all"),
        ("plot_format", "pdf", "plot_format must be one of png, svg, got 'pdf'"),
        ("auto", "yes", "auto must be true or false, got 'yes'"),
    ],
)
def test_a_bad_localize_value_names_the_source_key_and_fix(
    key: str, value: object, expected: str
) -> None:
    with pytest.raises(
        ConfigError, match=r"^pyproject\.toml \[tool\.onnxparity\.localize\]: "
    ) as e:
        parse_localize_options({key: value}, "pyproject.toml [tool.onnxparity.localize]")
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------
# Localization on a damaged layer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "factor"), [("scale", 2.0), ("noise", 0.5)])
@pytest.mark.parametrize("layer", [0, 2, 4])
def test_a_damaged_layer_is_the_first_damaged_node_and_ranked_top(
    mlp_export: Path,
    mlp_inputs: dict[str, np.ndarray],
    tmp_path: Path,
    layer: int,
    mode: str,
    factor: float,
) -> None:
    variant = damaged(mlp_export, tmp_path, f"layers.{layer}.weight", mode, factor)
    result = run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "work")

    first = result.first_damaged
    assert first is not None
    assert (first.node, first.op_type) == (f"/layers/layers.{layer}/MatMul", "MatMul")
    assert first.tensor == f"/layers/layers.{layer}/MatMul_output_0"
    assert result.damaged() == result.top(1) == (first,)
    assert result.first_past_tolerance == first
    upstream = [drift for drift in result.matched if drift.depth < first.depth]
    assert all(drift.rel_l2 == 0.0 for drift in upstream)
    # What follows only inherits the drift: on the reference's inputs it adds nothing.
    downstream = [drift for drift in result.matched if drift.depth > first.depth]
    assert all(drift.local_rel_l2 == 0.0 < drift.rel_l2 for drift in downstream)
    assert len(result.matched) == MLP_ACTIVATIONS
    assert result.unmatched_reference == result.unmatched_variant == ()


def test_a_second_damaged_layer_outranks_the_tensors_that_only_inherit_the_first_ones_drift(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    first_damage = damaged(mlp_export, tmp_path, "layers.0.weight", "noise", 1.0)
    variant = modelkit.damage_initializer(
        first_damage, tmp_path / "twice.onnx", "layers.4.weight", mode="noise", factor=0.5
    )
    result = run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "work")
    assert [drift.node for drift in result.top(2)] == [MLP_MATMULS[0], MLP_MATMULS[2]]
    assert [drift.node for drift in result.damaged()] == [MLP_MATMULS[0], MLP_MATMULS[2]]
    # Ranked by rel_l2 alone, the first layer's drift, inherited downstream, hides the second.
    by_rel_l2 = sorted(result.matched, key=lambda drift: -drift.rel_l2)
    assert by_rel_l2[1].node != MLP_MATMULS[2]


def test_an_unchanged_copy_matches_every_tensor_with_no_drift(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(mlp(mlp_export).read_bytes())
    result = run_localize(mlp(mlp_export), copy, mlp_inputs, tmp_path / "work")
    assert result.first_past_tolerance is None
    assert result.first_damaged is None
    assert result.top(5) == result.damaged() == ()
    assert [drift.rel_l2 for drift in result.matched] == [0.0] * MLP_ACTIVATIONS
    assert [drift.local_rel_l2 for drift in result.matched] == [0.0] * MLP_ACTIVATIONS
    assert all(drift.sqnr_db == math.inf for drift in result.matched)
    assert result.matched[0].to_json()["sqnr_db"] == "inf"
    lines = message_lines(result, 3)
    assert lines[1] == "  no node is damaged"
    assert lines[2] == "  no matched tensor drifts past rel_l2 0.05"


def test_matched_tensors_are_in_topological_order_with_reference_depths(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    result = run_localize(mlp(mlp_export), mlp(mlp_export, "int8"), mlp_inputs, tmp_path / "work")
    nodes = onnx.load(mlp(mlp_export)).graph.node
    assert [drift.depth for drift in result.matched] == list(range(MLP_ACTIVATIONS))
    assert [drift.node for drift in result.matched] == [node.name for node in nodes]
    assert [drift.tensor for drift in result.matched] == [node.output[0] for node in nodes]


# --------------------------------------------------------------------------------------------
# Variants made by onnxruntime's tools
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["int8", "int4"])
def test_a_healthy_quantized_variant_has_no_damaged_node_and_a_ranking_of_its_matmuls(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path, variant: str
) -> None:
    result = run_localize(mlp(mlp_export), mlp(mlp_export, variant), mlp_inputs, tmp_path / "work")
    assert len(result.matched) == MLP_ACTIVATIONS
    assert result.unmatched_reference == ()
    assert result.damaged() == ()
    # The rewritten MatMuls add the error; the float ops between them add none of their own.
    assert {drift.op_type for drift in result.top(5)} == {"MatMul"}
    added_by = {op: 0.0 for op in ("MatMul", "Add", "Relu")}
    for drift in result.matched:
        added_by[drift.op_type] += drift.local_rel_l2
    assert added_by["MatMul"] > 0.0 == added_by["Add"] + added_by["Relu"]
    assert all(drift.damage < result.damage_ratio for drift in result.matched)
    assert all(0.0 < drift.rel_l2 < 0.2 and drift.cosine > 0.99 for drift in result.matched)
    assert all(10.0 < drift.sqnr_db < 60.0 for drift in result.matched)


def test_int4_drifts_more_than_int8_at_every_tensor(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    int8 = run_localize(mlp(mlp_export), mlp(mlp_export, "int8"), mlp_inputs, tmp_path / "int8")
    int4 = run_localize(mlp(mlp_export), mlp(mlp_export, "int4"), mlp_inputs, tmp_path / "int4")
    for low, high in zip(int8.matched, int4.matched, strict=True):
        assert low.tensor == high.tensor
        assert high.rel_l2 > low.rel_l2


def test_dynamic_int8_reports_the_quantization_plumbing_as_unmatched_variant_tensors(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    result = run_localize(mlp(mlp_export), mlp(mlp_export, "int8"), mlp_inputs, tmp_path / "work")
    assert "x_scale" in result.unmatched_variant
    assert "/layers/layers.0/MatMul_quant_scales_mul:0" in result.unmatched_variant
    assert "x_quantized" not in result.unmatched_variant  # integer tensors are never compared


def test_qdq_tensors_are_compared_after_their_dequantize_and_fused_ones_reported_unmatched(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    result = run_localize(mlp(mlp_export), mlp(mlp_export, "qdq"), mlp_inputs, tmp_path / "work")
    by_tensor = {drift.tensor: drift for drift in result.matched}
    assert by_tensor["/layers/layers.0/MatMul_output_0"].variant_tensor == (
        "/layers/layers.0/MatMul_output_0_DequantizeLinear_Output"
    )
    assert by_tensor["logits"].variant_tensor == "logits"
    # The quantizer folds each Relu into the Add before it, so the Add's own output is gone.
    assert result.unmatched_reference == (
        "/layers/layers.0/Add_output_0",
        "/layers/layers.2/Add_output_0",
    )
    assert "logits_QuantizeLinear_Input" in result.unmatched_variant
    assert "/layers/layers.0/MatMul_output_0" not in result.unmatched_variant


def test_fp16_activations_are_upcast_and_its_io_casts_reported_unmatched(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    result = run_localize(mlp(mlp_export), mlp(mlp_export, "fp16"), mlp_inputs, tmp_path / "work")
    assert len(result.matched) == MLP_ACTIVATIONS
    assert all(0.0 < drift.rel_l2 < 1e-3 for drift in result.matched)
    assert result.unmatched_variant == ("graph_input_cast_0", "graph_output_cast_0")


# --------------------------------------------------------------------------------------------
# Memory, files and settings
# --------------------------------------------------------------------------------------------


def test_models_with_external_data_localize_like_inline_ones(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    variant = damaged(mlp_export, tmp_path, "layers.2.weight", "scale", 2.0)
    reference_ext = modelkit.save_with_external_data(mlp(mlp_export), tmp_path / "ext" / "ref.onnx")
    variant_ext = modelkit.save_with_external_data(variant, tmp_path / "ext" / "var.onnx")
    assert (tmp_path / "ext" / "ref.onnx.data").stat().st_size > 0

    inline = run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "inline")
    external = run_localize(reference_ext, variant_ext, mlp_inputs, tmp_path / "external")
    assert external.matched == inline.matched
    assert external.first_past_tolerance == inline.first_past_tolerance


def test_external_data_is_linked_not_copied_even_where_both_sidecars_share_a_name(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    variant = damaged(mlp_export, tmp_path, "layers.2.weight", "scale", 2.0)
    reference_ext = modelkit.save_with_external_data(
        mlp(mlp_export), tmp_path / "ref" / "model.onnx", location="weights.bin"
    )
    variant_ext = modelkit.save_with_external_data(
        variant, tmp_path / "var" / "model.onnx", location="weights.bin"
    )
    inline = run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "inline")
    linked = run_localize(reference_ext, variant_ext, mlp_inputs, tmp_path / "work")
    assert linked.matched == inline.matched
    assert linked.first_damaged is not None and linked.first_damaged.node == MLP_MATMULS[1]
    for role, source in (("reference", reference_ext), ("variant", variant_ext)):
        link = tmp_path / "work" / f"{role}.instrumented.onnx.links" / "weights.bin"
        assert link.samefile(source.parent / "weights.bin")
    assert not list((tmp_path / "work").glob("*.data"))


def test_batch_size_one_gives_the_same_result_as_one_big_batch(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    variant = mlp(mlp_export, "qdq")
    one = run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "one", batch_size=1)
    big = run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "big", batch_size=1000)
    assert (one.instrumented_runs, big.instrumented_runs) == (len(one.matched), 1)
    assert one.matched == big.matched
    assert one.unmatched_reference == big.unmatched_reference
    assert one.unmatched_variant == big.unmatched_variant


def test_a_memory_budget_below_the_activations_splits_the_runs_and_changes_no_number(
    mlp_export: Path, tmp_path: Path
) -> None:
    # 1024 rows: each activation is 1024 x 64 floats (256 KB), so 1 MB holds a few at a time.
    inputs = {name: t.numpy() for name, t in modelkit.TinyMLP().example_inputs(batch=1024).items()}
    variant = damaged(mlp_export, tmp_path, "layers.2.weight", "scale", 2.0)
    big = run_localize(mlp(mlp_export), variant, inputs, tmp_path / "big")
    small = run_localize(mlp(mlp_export), variant, inputs, tmp_path / "small", memory_mb=1)
    assert (big.memory_mb, small.memory_mb) == (LocalizeOptions().memory_budget_mb, 1)
    assert big.instrumented_runs == 1 < small.instrumented_runs
    assert 0.5 < small.largest_batch_mb <= 1 < big.largest_batch_mb
    assert small.matched == big.matched
    assert small.first_damaged == big.first_damaged


def test_instrumented_copies_go_to_the_workdir_and_the_models_are_left_untouched(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    sources = [mlp(mlp_export), mlp(mlp_export, "int4")]
    before = [hashlib.sha256(path.read_bytes()).hexdigest() for path in sources]
    run_localize(*sources, mlp_inputs, tmp_path / "work")
    after = [hashlib.sha256(path.read_bytes()).hexdigest() for path in sources]
    assert after == before
    assert {path.name for path in (tmp_path / "work").iterdir()} == {
        "reference.instrumented.onnx",
        "reference.instrumented.onnx.data",
        "variant.instrumented.onnx",
        "variant.instrumented.onnx.data",
    }


def test_the_optimization_level_of_the_instrumented_runs_is_recorded(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    result = run_localize(
        mlp(mlp_export),
        mlp(mlp_export, "int8"),
        mlp_inputs,
        tmp_path / "work",
        graph_optimization_level="all",
    )
    assert result.optimization_level == "all"
    assert result.to_json()["optimization_level"] == "all"
    assert "optimisation level 'all'" in message_lines(result, 1)[0]


def test_a_missing_model_is_named_in_a_one_line_error(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    missing = tmp_path / "absent.onnx"
    with pytest.raises(ModelLoadError, match=r"absent\.onnx: no such model"):
        run_localize(mlp(mlp_export), missing, mlp_inputs, tmp_path / "work")


def test_non_finite_variant_activations_are_infinite_drift_in_plain_json(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> None:
    variant = damaged(mlp_export, tmp_path, "layers.2.weight", "scale", math.inf)
    result = run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "work")
    first = result.first_past_tolerance
    assert first is not None and first.node == "/layers/layers.2/MatMul"
    assert first.rel_l2 == math.inf and first.nonfinite_in_variant > 0
    assert first.to_json()["rel_l2"] == "inf"
    assert result.first_damaged == first
    assert first.local_rel_l2 == first.damage == math.inf and first.damaged
    json.dumps(result.to_json(), allow_nan=False)


# --------------------------------------------------------------------------------------------
# Names from hand-built graphs
# --------------------------------------------------------------------------------------------


def hand_built(path: Path, scale: float) -> Path:
    """``y = Relu(x * w) + b`` with unnamed nodes, listed out of topological order."""
    w = numpy_helper.from_array(np.full(4, scale, dtype=np.float32), "w")
    b = numpy_helper.from_array(np.ones(4, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Add", ["relu", "b"], ["y"]),
        helper.make_node("Relu", ["scaled"], ["relu"]),
        helper.make_node("Mul", ["x", "w"], ["scaled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, path)
    return path


def test_unnamed_nodes_are_reported_by_op_type_and_unsorted_graphs_by_topological_depth(
    tmp_path: Path,
) -> None:
    reference = hand_built(tmp_path / "ref.onnx", 1.0)
    variant = hand_built(tmp_path / "var.onnx", 3.0)
    inputs = {"x": np.abs(np.random.default_rng(0).standard_normal((2, 4))).astype(np.float32)}
    result = run_localize(reference, variant, inputs, tmp_path / "work")
    assert [(d.tensor, d.op_type, d.depth) for d in result.matched] == [
        ("scaled", "Mul", 0),
        ("relu", "Relu", 1),
        ("y", "Add", 2),
    ]
    first = result.first_damaged
    assert first is not None and (first.tensor, first.node) == ("scaled", "")
    assert message_lines(result, 1)[2].startswith(
        "  first damaged: 'scaled' from unnamed Mul (depth 0): adds rel_l2 2 on its own; drift"
    )


# --------------------------------------------------------------------------------------------
# Report: message, JSON, plot
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def damaged_result(
    mlp_export: Path, mlp_inputs: dict[str, np.ndarray], tmp_path: Path
) -> Localization:
    variant = damaged(mlp_export, tmp_path, "layers.2.weight", "noise", 0.5)
    return run_localize(mlp(mlp_export), variant, mlp_inputs, tmp_path / "work", top_n=2)


def test_the_message_names_the_damaged_node_first_then_the_ranking_and_the_drift(
    damaged_result: Localization,
) -> None:
    lines = message_lines(damaged_result, 2)
    assert lines[0].startswith("localization of 'mlp_damaged_layers.2.weight' against the")
    assert lines[1].startswith("  damaged: 1 node(s) (damaged from 8× the op type's noise")
    assert lines[2].startswith(
        "  first damaged: '/layers/layers.2/MatMul_output_0' from MatMul "
        "'/layers/layers.2/MatMul' (depth 3): adds rel_l2 "
    )
    assert lines[3] == (
        "    weight: MatMul '/layers/layers.2/MatMul' reads 'layers.2.weight' (float32 [64, 64])"
    )
    assert lines[4] == "  top 1 by damage (error added on its own over the noise):"
    assert lines[5].startswith("    1. '/layers/layers.2/MatMul_output_0' from MatMul")
    assert lines[5].endswith("[damaged]")
    assert lines[6].startswith("  drift first past rel_l2 0.05: '/layers/layers.2/MatMul_output_0'")
    assert len(lines) == 7


def test_the_json_is_plain_python_and_lists_damaged_first_top_and_every_matched_tensor(
    damaged_result: Localization,
) -> None:
    document = damaged_result.to_json()
    assert is_plain_json(document)
    json.dumps(document, allow_nan=False)
    assert document["first_damaged"] == "/layers/layers.2/MatMul_output_0"
    assert document["damaged"] == ["/layers/layers.2/MatMul_output_0"]
    assert document["first_past_tolerance"] == "/layers/layers.2/MatMul_output_0"
    assert document["top"] == ["/layers/layers.2/MatMul_output_0"]
    assert document["sources"]["/layers/layers.2/MatMul_output_0"][0]["initializer"] == (
        "layers.2.weight"
    )
    assert len(document["matched"]) == MLP_ACTIVATIONS
    assert document["plot"] is None
    assert document["weights_checked"] is False
    assert set(document["matched"][0]) >= {
        "tensor", "node", "op_type", "depth", "max_abs", "mean_abs", "rel_l2", "sqnr_db", "cosine",
        "local_rel_l2", "expected_rel_l2", "damage", "damaged", "fill_fraction", "masked",
    }  # fmt: skip


def test_a_localization_read_back_from_its_json_is_the_same_localization(
    damaged_result: Localization, tmp_path: Path
) -> None:
    referenced = damaged_result.with_plot(tmp_path / "mlp.drift.png")
    document = json.loads(json.dumps(referenced.to_json(), allow_nan=False))
    assert Localization.from_json(document) == referenced


def test_infinite_drift_survives_the_json_round_trip() -> None:
    drift = TensorDrift("t", "n", "MatMul", 0, math.inf, math.inf, math.inf, -math.inf, 0.0)
    result = Localization("g", "v", "disable", (drift,), (), (), drift, top_n=3)
    document = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert math.isnan(document and Localization.from_json(document).matched[0].damage)
    assert Localization.from_json(document).to_json() == result.to_json()


def test_the_summary_line_names_the_damaged_node_and_where_drift_first_shows(
    damaged_result: Localization,
) -> None:
    top = damaged_result.damaged()[0]
    assert summary_line(damaged_result) == (
        f"damaged: MatMul '/layers/layers.2/MatMul' (adds rel_l2 {top.local_rel_l2:.3g}); "
        "drift first past rel_l2 0.05: '/layers/layers.2/MatMul_output_0'"
    )


def test_the_summary_line_of_an_exact_copy_says_none() -> None:
    result = Localization("g", "v", "disable", (), (), (), None)
    assert summary_line(result) == "no damaged node; drift first past rel_l2 0.05: none"


@pytest.mark.parametrize(
    ("plot_format", "magic"), [("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<?xml")]
)
def test_the_drift_plot_is_written_and_referenced_from_the_results(
    mlp_export: Path,
    mlp_inputs: dict[str, np.ndarray],
    damaged_result: Localization,
    tmp_path: Path,
    plot_format: str,
    magic: bytes,
) -> None:
    int4 = run_localize(mlp(mlp_export), mlp(mlp_export, "int4"), mlp_inputs, tmp_path / "int4")
    path = drift_plot_path(tmp_path / "plots", "mlp", plot_format)
    assert plot_drift([damaged_result, int4], path) == path
    content = path.read_bytes()
    assert content.startswith(magic)
    if plot_format == "svg":
        assert b"<svg" in content
    referenced = damaged_result.with_plot(path)
    assert referenced.to_json()["plot"] == str(path)
    assert message_lines(referenced, 1)[-1] == f"  drift and damage by depth: {path}"


def test_a_plot_survives_zero_and_infinite_drift(tmp_path: Path) -> None:
    def drift(depth: int, rel_l2: float) -> TensorDrift:
        return TensorDrift(f"t{depth}", f"n{depth}", "MatMul", depth, 0.0, 0.0, rel_l2, 0.0, 1.0)

    drifts = (drift(0, 0.0), drift(1, 0.2), drift(2, math.inf))
    result = Localization("g", "v", "disable", drifts, (), (), drifts[1])
    path = plot_drift([result], tmp_path / "g.drift.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_a_plot_file_without_a_known_suffix_is_refused(
    damaged_result: Localization, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"drift\.pdf: cannot plot to \.pdf; name the file"):
        plot_drift([damaged_result], tmp_path / "drift.pdf")


def test_plotting_without_matplotlib_names_the_package_to_install(
    damaged_result: Localization, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(
        PlotUnavailableError, match=r"drift plots need matplotlib; pip install matplotlib$"
    ):
        plot_drift([damaged_result], tmp_path / "drift.png")


def test_plot_paths_are_safe_file_names_for_any_graph_name(tmp_path: Path) -> None:
    assert drift_plot_path(tmp_path, "speech/encoder v2", "svg") == (
        tmp_path / "speech_encoder_v2.drift.svg"
    )
