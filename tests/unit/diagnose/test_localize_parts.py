"""The parts of localization one by one: fill-aware statistics, noise and damage, the memory
budget and the run schedule, the replay cut, the stored weights behind a node, and the
weight-space prior — on hand-built graphs and hand-made verdicts."""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.diagnose.localize.budget import plan_batches, tensor_bytes
from pytest_onnxparity.diagnose.localize.chain import segment_precision, weight_sources
from pytest_onnxparity.diagnose.localize.config import LocalizeOptions
from pytest_onnxparity.diagnose.localize.damage import TYPICAL_NOISE, assess, noise_levels
from pytest_onnxparity.diagnose.localize.measure import localize
from pytest_onnxparity.diagnose.localize.plot import plot_drift
from pytest_onnxparity.diagnose.localize.prior import (
    WeightPrior,
    WeightVerdict,
    verdicts_from_comparisons,
)
from pytest_onnxparity.diagnose.localize.records import Localization, TensorDrift
from pytest_onnxparity.diagnose.localize.replay import fed_name, replay_model, segment
from pytest_onnxparity.diagnose.localize.report import message_lines, summary_line
from pytest_onnxparity.diagnose.localize.schedule import held_bytes, plan_runs
from pytest_onnxparity.diagnose.localize.statistics import (
    ShapeDifferenceError,
    compare_tensors,
)
from pytest_onnxparity.plugin import localize as localize_plugin

RNG = np.random.default_rng(0)


def save(
    nodes: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    inits: list[Any],
    path: Path,
    opset: int = 17,
) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    onnx.save_model(model, path)
    return path


def float_input(name: str, shape: list[int]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def drift(tensor: str, op_type: str, local: float, precision: str = "8-bit", **kw: Any) -> Any:
    return TensorDrift(
        tensor,
        tensor,
        op_type,
        0,
        0.0,
        0.0,
        local,
        0.0,
        1.0,
        local_rel_l2=local,
        precision=precision,
        **kw,
    )


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def test_statistics_agree_with_float64_arithmetic() -> None:
    reference = RNG.standard_normal((3, 70_000)).astype(np.float32)
    variant = reference + 0.01 * RNG.standard_normal(reference.shape).astype(np.float32)
    stats = compare_tensors(reference, variant)
    ref64, var64 = reference.astype(np.float64), variant.astype(np.float64)
    assert stats.rel_l2 == pytest.approx(np.linalg.norm(var64 - ref64) / np.linalg.norm(ref64))
    assert stats.max_abs == pytest.approx(np.abs(var64 - ref64).max())
    assert stats.mean_abs == pytest.approx(np.abs(var64 - ref64).mean())
    cosine = ref64.ravel() @ var64.ravel() / np.linalg.norm(ref64) / np.linalg.norm(var64)
    assert stats.cosine == pytest.approx(cosine, abs=1e-9)
    assert (stats.fill, stats.nonfinite_in_variant, stats.masked) == (0, 0, False)


@pytest.mark.parametrize("fill", [np.finfo(np.float32).min, -1e9, -np.inf])
def test_additive_mask_fill_is_left_out_instead_of_reading_as_agreement(fill: float) -> None:
    scores = RNG.standard_normal((2, 8, 8)).astype(np.float32)
    drifted = scores + 0.1 * RNG.standard_normal(scores.shape).astype(np.float32)
    reference, variant = scores.copy(), drifted.copy()
    reference[:, :, 6:] = fill
    variant[:, :, 6:] = -65504.0  # an fp16 variant's own fill
    stats = compare_tensors(reference, variant)
    kept = compare_tensors(scores[:, :, :6], drifted[:, :, :6])
    assert stats.fill == 2 * 8 * 2 and stats.fill_fraction == 0.25
    assert stats.rel_l2 == pytest.approx(kept.rel_l2) and stats.rel_l2 > 0.05
    assert not stats.masked


def test_a_tensor_of_nothing_but_fill_is_masked() -> None:
    stats = compare_tensors(np.full(6, -np.inf, np.float32), np.full(6, -3e38, np.float32))
    assert stats.masked and stats.fill_fraction == 1.0


def test_nan_in_the_variant_where_the_reference_is_finite_is_infinite_drift() -> None:
    reference = np.ones(10, np.float32)
    variant = reference.copy()
    variant[3] = np.nan
    stats = compare_tensors(reference, variant)
    assert (stats.nonfinite_in_variant, stats.rel_l2) == (1, math.inf)


def test_tensors_of_different_shapes_are_not_compared() -> None:
    with pytest.raises(ShapeDifferenceError, match=r"shape \[2, 3\] != \[3, 2\]"):
        compare_tensors(np.zeros((3, 2)), np.zeros((2, 3)))


def test_float16_is_upcast_and_zero_tensors_agree() -> None:
    half = compare_tensors(np.ones(4, np.float32), np.ones(4, np.float16))
    zero = compare_tensors(np.zeros(4, np.float32), np.zeros(4, np.float32))
    assert (half.rel_l2, zero.rel_l2, zero.cosine) == (0.0, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Noise and damage
# --------------------------------------------------------------------------------------------


def test_noise_is_the_median_of_the_same_layer_in_the_other_blocks() -> None:
    def layer(block: int, name: str, local: float) -> TensorDrift:
        return drift(f"/layer.{block}/{name}/MatMul", "MatMul", local)

    # Every block's fc2 adds ten times what its fc1 does; block 1's fc1 is broken.
    drifts = [layer(b, "fc2", 0.3) for b in range(4)]
    drifts += [layer(b, "fc1", 1.0 if b == 1 else 0.03) for b in range(4)]
    drifts.append(drift("add", "Add", 0.0, precision="float"))
    assessed, noise = assess(drifts, 8.0, {})
    assert noise == {
        "its 8-bit peers /layer.#/fc1/MatMul": pytest.approx(0.03),
        "its 8-bit peers /layer.#/fc2/MatMul": pytest.approx(0.3),
        "typical float": 0.0,
    }
    assert [d.tensor for d in assessed if d.damaged] == ["/layer.1/fc1/MatMul"]
    assert assessed[5].damage == pytest.approx(1.0 / 0.03)
    assert assessed[5].noise_from == "its 8-bit peers /layer.#/fc1/MatMul"
    assert "33.3× the noise of its 8-bit peers /layer.#/fc1/MatMul (0.03)" in assessed[5].describe()


def test_without_enough_peers_the_op_type_then_the_precision_then_typical_noise_count() -> None:
    by_op = noise_levels([drift(f"m{i}", "MatMul", 0.05) for i in range(3)])
    assert by_op["m0"] == ("8-bit MatMul nodes", pytest.approx(0.05))
    pooled = noise_levels(
        [drift("g", "Gather", 0.2), *(drift(f"m{i}", "MatMul", 0.05) for i in range(3))]
    )
    assert pooled["g"] == ("8-bit nodes", pytest.approx(0.05))
    alone = noise_levels([drift("m", "MatMul", 0.06, precision="4-bit")])
    assert alone == {"m": ("typical 4-bit", TYPICAL_NOISE["4-bit"])}


def test_in_a_float_variant_any_error_a_node_adds_past_one_percent_is_damage() -> None:
    drifts = [
        drift("a", "MatMul", 0.005, precision="float"),
        drift("b", "MatMul", 0.2, precision="float"),
    ]
    assessed, noise = assess(drifts, 8.0, {})
    assert noise == {"typical float": 0.0}
    assert [(d.damage, d.damaged) for d in assessed] == [(math.inf, False), (math.inf, True)]


def test_a_failing_weight_marks_its_reader_damaged_and_unmeasured_damage_never_counts() -> None:
    drifts = [drift("m", "MatMul", 0.0), drift("n", "MatMul", math.nan)]
    drifts.append(drift("x", "Mul", math.inf))
    assessed, _ = assess(drifts, 8.0, {"m": ("w",)})
    assert [d.damaged for d in assessed] == [True, False, True]
    assert assessed[0].weight_failures == ("w",)
    assert math.isnan(assessed[1].damage)


# --------------------------------------------------------------------------------------------
# Budget and schedule
# --------------------------------------------------------------------------------------------


def chain_model(path: Path, links: int = 4) -> Path:
    """``x`` -> Relu -> Relu -> ... (``t0``..``t{links-1}``), x of shape [1024, 64]."""
    nodes = [
        helper.make_node("Relu", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"], name=f"r{i}")
        for i in range(links)
    ]
    out = helper.make_tensor_value_info(f"t{links - 1}", TensorProto.FLOAT, None)
    return save(nodes, [float_input("x", ["rows", 64])], [out], [], path)


def test_tensor_sizes_come_from_shape_inference_on_the_inputs_shapes(tmp_path: Path) -> None:
    model = onnx.load(chain_model(tmp_path / "chain.onnx"))
    sizes = tensor_bytes(model, {"x": np.zeros((1024, 64), np.float32)})
    assert sizes == {f"t{i}": 1024 * 64 * 4 for i in range(4)}


def test_batches_fit_the_budget_and_a_tensor_larger_than_it_runs_alone() -> None:
    sizes = {"a": 100, "b": 100, "c": 400, "d": 100}
    frontiers = {"b": ("a",), "c": ("b",), "d": ("c",)}
    batches = list(plan_batches(["a", "b", "c", "d"], frontiers, sizes, 450))
    assert [b.tensors for b in batches] == [("a", "b"), ("c",), ("d",)]
    assert [b.frontier for b in batches] == [("a",), ("b",), ("c",)]
    # c (400) cannot share a run; d runs alone as well, since it reads c back.
    assert [b.estimated_bytes for b in batches] == [400, 900, 600]
    capped = list(plan_batches(["a", "b", "c", "d"], frontiers, sizes, 10**6, max_tensors=3))
    assert [b.tensors for b in capped] == [("a", "b", "c"), ("d",)]


def test_each_run_computes_only_its_region_and_keeps_what_the_next_one_reads(
    tmp_path: Path,
) -> None:
    model = onnx.load(chain_model(tmp_path / "chain.onnx"))
    nodes = list(model.graph.node)
    producer = {node.output[0]: i for i, node in enumerate(nodes)}
    steps = plan_runs([["t0", "t1"], ["t2"], ["t3"]], nodes, producer, {"t0", "t1", "t2", "t3"})
    assert [(s.exposes, s.reads, s.keeps, s.releases) for s in steps] == [
        (("t0", "t1"), (), ("t1",), ()),
        (("t2",), ("t1",), ("t2",), ("t1",)),
        (("t3",), ("t2",), (), ("t2",)),
    ]
    assert held_bytes(steps, {f"t{i}": 10 for i in range(4)}, 0) == [20, 20, 20]


def test_a_replay_copy_reads_its_cut_tensors_from_inputs_and_drops_what_it_does_not_need(
    tmp_path: Path,
) -> None:
    model = onnx.load(chain_model(tmp_path / "chain.onnx"))
    producer = {node.output[0]: i for i, node in enumerate(model.graph.node)}
    replay = replay_model(model, ["t2"], {"t1": TensorProto.FLOAT}, producer)
    assert [(n.name, list(n.input)) for n in replay.graph.node] == [("r2", [fed_name("t1")])]
    assert [value.name for value in replay.graph.input] == ["x", fed_name("t1")]
    assert segment(list(model.graph.node), producer, ["t3", "t1"], {"t2"}) == ((0, 1, 3), ("t2",))


# --------------------------------------------------------------------------------------------
# The GELU artefact: drift a node inherits and amplifies is not damage
# --------------------------------------------------------------------------------------------


def gelu_model(path: Path, weight: np.ndarray) -> Path:
    """``h = x @ w - 4``, then the exporter's erf GELU: ``0.5 * h * (1 + erf(h / sqrt 2))``."""
    constants = [
        numpy_helper.from_array(np.asarray(v, np.float32), n)
        for n, v in (("sqrt2", math.sqrt(2)), ("one", 1.0), ("half", 0.5), ("bias", -4.0))
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["product"], name="/fc1/MatMul"),
        helper.make_node("Add", ["product", "bias"], ["h"], name="/fc1/Add"),
        helper.make_node("Div", ["h", "sqrt2"], ["scaled"], name="/act/Div"),
        helper.make_node("Erf", ["scaled"], ["erf"], name="/act/Erf"),
        helper.make_node("Add", ["erf", "one"], ["shifted"], name="/act/Add"),
        helper.make_node("Mul", ["h", "shifted"], ["gated"], name="/act/Mul"),
        helper.make_node("Mul", ["gated", "half"], ["y"], name="/act/Mul_1"),
    ]
    inits = [numpy_helper.from_array(weight.astype(np.float32), "w"), *constants]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return save(nodes, [float_input("x", [64, 16])], [out], inits, path)


def test_the_add_inside_a_gelu_amplifies_drift_but_adds_no_damage_of_its_own(
    tmp_path: Path,
) -> None:
    weight = RNG.standard_normal((16, 16)) / 4
    noisy = weight + 0.002 * RNG.standard_normal(weight.shape)
    reference = gelu_model(tmp_path / "ref.onnx", weight)
    variant = gelu_model(tmp_path / "var.onnx", noisy)
    # Pre-activations near -4: 1 + erf is near 0 there, so its relative error explodes.
    inputs = {"x": RNG.standard_normal((64, 16)).astype(np.float32)}
    result = localize(
        reference,
        variant,
        inputs,
        graph="g",
        variant="v",
        options=LocalizeOptions(),
        workdir=tmp_path / "work",
    )
    by_node = {d.node: d for d in result.matched}
    add, matmul, erf = by_node["/act/Add"], by_node["/fc1/MatMul"], by_node["/act/Erf"]
    # Ranked by drift added over its inputs (what localization did before), the Add came first.
    assert add.rel_l2 - erf.rel_l2 > matmul.rel_l2
    assert add.local_rel_l2 == 0.0 < matmul.local_rel_l2 < 0.01
    assert result.top(1) == (matmul,) and result.damaged() == ()


# --------------------------------------------------------------------------------------------
# The weights behind a node, and the weight-space prior
# --------------------------------------------------------------------------------------------


def embedding_models(tmp_path: Path, damaged_rows: slice) -> tuple[Path, Path]:
    """A reference ``Gather(table, ids)`` and a variant that stores the table as blockwise
    int8 read through a DequantizeLinear, with ``damaged_rows`` zeroed."""
    table = RNG.standard_normal((64, 32)).astype(np.float32)
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [4])
    out = helper.make_tensor_value_info("emb", TensorProto.FLOAT, None)
    reference = save(
        [helper.make_node("Gather", ["table", "ids"], ["emb"], name="/emb/Gather")],
        [ids],
        [out],
        [numpy_helper.from_array(table, "table")],
        tmp_path / "ref.onnx",
    )
    scale = np.abs(table).max(axis=1) / 127
    quantized = np.round(table / scale[:, None]).astype(np.int8)
    quantized[damaged_rows] = 0
    nodes = [
        helper.make_node(
            "DequantizeLinear",
            ["table_quantized", "table_scale"],
            ["table_dq"],
            name="/emb/DequantizeLinear",
            axis=0,
        ),
        helper.make_node("Gather", ["table_dq", "ids"], ["emb"], name="/emb/Gather"),
    ]
    inits = [
        numpy_helper.from_array(quantized, "table_quantized"),
        numpy_helper.from_array(scale.astype(np.float32), "table_scale"),
    ]
    variant = save(nodes, [ids], [out], inits, tmp_path / "var.onnx", opset=21)
    return reference, variant


@pytest.mark.parametrize("rows", [slice(0, 8), slice(60, 64)], ids=["gathered", "never-gathered"])
def test_the_dequantize_feeding_a_gather_is_named_with_the_weights_own_error(
    tmp_path: Path, rows: slice
) -> None:
    reference, variant = embedding_models(tmp_path, rows)
    verdict = WeightVerdict("table", True, 0.35, stored_as="table_quantized")
    inputs = {"ids": np.array([1, 2, 3, 4], np.int64)}
    result = localize(
        reference,
        variant,
        inputs,
        graph="g",
        variant="v",
        options=LocalizeOptions(),
        workdir=tmp_path / "work",
        weights=[verdict],
    )
    # Rows 60-63 are never gathered: only the prior sees them, and it is enough.
    first = result.first_damaged
    assert first is not None and first.node == "/emb/Gather"
    assert first.weight_failures == ("table",)
    (source,) = result.sources["emb"]
    assert source.describe() == (
        "DequantizeLinear '/emb/DequantizeLinear' reads 'table_quantized' (int8 [64, 32]) "
        "(reference weight 'table'): weight rel_l2 0.35, fails weight-space parity"
    )
    assert summary_line(result).startswith("damaged: Gather '/emb/Gather' (")
    assert "weight 'table' fails weight-space parity" in summary_line(result)
    assert "weight-space parity as the prior" in message_lines(result, 1)[0]


def test_without_verdicts_the_stored_weight_is_still_named() -> None:
    dequantize = helper.make_node(
        "DequantizeLinear", ["W_quantized", "W_scale"], ["W_dq"], name="dq"
    )
    tensor = numpy_helper.from_array(np.zeros((4, 4), np.int8), "W_quantized")
    scale = numpy_helper.from_array(np.ones(1, np.float32), "W_scale")
    sources = weight_sources(
        [dequantize], {"W_quantized": tensor, "W_scale": scale}, ["W"], WeightPrior.of([])
    )
    assert [(s.node, s.initializer, s.weight, s.rel_l2, s.failed) for s in sources] == [
        ("dq", "W_quantized", "W", None, None)
    ]


def test_a_weight_stored_twice_fails_when_either_form_does() -> None:
    passing, failing = WeightVerdict("W", False, 0.01, "W_a"), WeightVerdict("W", True, 2.0, "W_b")
    prior = WeightPrior.of([passing, failing])
    assert prior.failed == ("W",) and prior.by_weight["W"].stored_as == "W_b"
    assert prior.failures_read_by([], ["W_b"]) == ("W",)
    assert prior.failures_read_by(["W"], []) == ("W",)
    assert prior.failures_read_by(["V"], ["W_a"]) == ()


def test_verdicts_are_read_from_weight_space_comparisons() -> None:
    comparison = types.SimpleNamespace(
        reference="W",
        tensor="W_Q4",
        readers=("m (MatMulNBits)",),
        passed=False,
        statistics=types.SimpleNamespace(rel_l2=2.5),
    )
    assert verdicts_from_comparisons([comparison]) == (
        WeightVerdict("W", True, 2.5, "W_Q4", ("m (MatMulNBits)",)),
    )


def test_the_plugin_takes_its_prior_from_weight_space_parity(tmp_path: Path) -> None:
    weight = RNG.standard_normal((16, 16)) / 4
    reference = gelu_model(tmp_path / "ref.onnx", weight)
    variant = gelu_model(tmp_path / "var.onnx", 3 * weight)
    verdicts = localize_plugin.weight_verdicts(reference, variant, "fp32", None)
    assert verdicts is not None
    by_weight = {verdict.weight: verdict for verdict in verdicts}
    assert by_weight["w"].failed and by_weight["w"].rel_l2 == pytest.approx(2.0)
    assert by_weight["w"].stored_as == "w"
    inputs = {"x": RNG.standard_normal((64, 16)).astype(np.float32)}
    result = localize(
        reference,
        variant,
        inputs,
        graph="g",
        variant="v",
        options=LocalizeOptions(),
        workdir=tmp_path / "work",
        weights=verdicts,
    )
    assert result.weights_checked and result.first_damaged is not None
    assert result.first_damaged.weight_failures == ("w",)
    assert result.sources["product"][0].failed is True


def test_precision_is_read_from_the_nodes_that_compute_a_segment() -> None:
    nbits = helper.make_node("MatMulNBits", ["x", "B", "s"], ["y"], domain="com.microsoft", bits=4)
    integer = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
    int4 = numpy_helper.from_array(np.zeros(2, np.int8), "q")
    int4.data_type = TensorProto.INT4
    dequantize = helper.make_node("DequantizeLinear", ["q", "s"], ["y"])
    plain = helper.make_node("Add", ["a", "b"], ["y"])
    assert segment_precision([nbits, integer], {}, {}) == "4-bit"
    assert segment_precision([integer], {}, {}) == "8-bit"
    assert segment_precision([dequantize], {"q": int4}, {}) == "4-bit"
    assert segment_precision([plain], {}, {"y": "float16"}) == "float16"
    assert segment_precision([plain], {}, {"y": "float32"}) == "float"


# --------------------------------------------------------------------------------------------
# Report and plot
# --------------------------------------------------------------------------------------------


def test_a_masked_tensor_is_described_as_fill_and_left_out_of_the_ranking(tmp_path: Path) -> None:
    masked = drift("mask", "Add", math.nan, masked=True, fill_fraction=1.0)
    partly = drift("scores", "Add", 0.02, fill_fraction=0.25, damage=1.0, expected_rel_l2=0.02)
    damaged = drift("fc1", "MatMul", 1.0, damage=33.0, damaged=True, expected_rel_l2=0.03)
    result = Localization("g", "v", "disable", (masked, partly, damaged), (), (), None)
    assert masked.describe() == "'mask' from Add 'mask' (depth 0): all mask fill, not compared"
    assert "25% mask fill left out" in partly.describe()
    assert result.ranked() == (damaged, partly)
    path = plot_drift([result], tmp_path / "g.drift.png")
    assert path.read_bytes().startswith(b"\x89PNG")
