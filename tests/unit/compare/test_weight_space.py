"""Weight-space parity on tiny models: for each quantized form a healthy variant that passes and
a damaged one that fails, with the message naming the weight and the node that reads it.

Variants come from onnxruntime's own tools (``modelkit``: fp16, dynamic int8, static QDQ,
MatMulNBits) and from hand-built graphs for the forms those tools do not write (``weightkit``:
GatherBlockQuantized, QLinearMatMul, int4/uint4 DequantizeLinear with zero points, bfloat16).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import modelkit
import numpy as np
import onnx
import pytest
import weightkit
from onnx import TensorProto, helper, numpy_helper

from pytest_onnxparity.compare.weight_space import (
    WeightParityReport,
    WeightSettings,
    compare_weights,
)

RNG = np.random.default_rng(3)


def rewrite(src: Path, dst: Path, name: str, change: Callable[[np.ndarray], np.ndarray]) -> Path:
    """Copy a model with one initializer's values changed (same name, same dtype)."""
    model = onnx.load(src)
    for tensor in model.graph.initializer:
        if tensor.name == name:
            values = numpy_helper.to_array(tensor)
            tensor.CopyFrom(numpy_helper.from_array(change(values).astype(values.dtype), name))
            break
    else:
        raise KeyError(name)
    onnx.save(model, dst)
    return dst


def failed_lines(report: WeightParityReport) -> str:
    assert not report.passed
    return report.message()


# --------------------------------------------------------------------------------------------
# onnxruntime's quantizers: fp16, int8 (MatMulInteger), QDQ, int4 (MatMulNBits)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["fp16", "int8", "int4", "qdq"])
def test_onnxruntime_variants_pass_with_every_weight_compared(
    mlp_export: Path, variant: str
) -> None:
    report = compare_weights(
        mlp_export / "mlp.onnx",
        mlp_export / f"mlp_{variant}.onnx",
        file_tier=variant.replace("qdq", "int8"),
    )
    assert report.passed, report.message()
    assert len({c.reference for c in report.comparisons}) == 6  # 3 weights, 3 biases
    assert report.unmatched_reference == ()
    assert report.uncompared == ()


def test_an_inf_in_an_fp16_weight_fails_naming_the_weight_and_its_reader(
    mlp_export: Path, tmp_path: Path
) -> None:
    def overflow(values: np.ndarray) -> np.ndarray:
        values = values.copy()
        values[3, 5] = np.inf
        return values

    damaged = rewrite(
        mlp_export / "mlp_fp16.onnx", tmp_path / "fp16.onnx", "layers.2.weight", overflow
    )
    message = failed_lines(compare_weights(mlp_export / "mlp.onnx", damaged, file_tier="fp16"))
    assert "1 of 6 weights differ from the reference mlp.onnx beyond their tier's limits" in (
        message
    )
    assert (
        "  layers.2.weight (float16, float16, tier fp16) read by /layers/layers.2/MatMul "
        "(MatMul): 1 NaN/Inf values — 1 NaN/Inf values" in message
    )
    assert "worst element [3, 5]: inf, reference" in message


def test_int8_quantized_from_a_zeroed_weight_fails_as_all_zeros(
    mlp_export: Path, tmp_path: Path
) -> None:
    zeroed = modelkit.damage_initializer(
        mlp_export / "mlp.onnx", tmp_path / "z.onnx", "layers.0.weight"
    )
    damaged = modelkit.quantize_int8_dynamic(zeroed, tmp_path / "int8.onnx")
    message = failed_lines(compare_weights(mlp_export / "mlp.onnx", damaged, file_tier="int8"))
    assert (
        "  layers.0.weight as layers.0.weight_quantized (MatMulInteger, int8, per tensor, "
        "tier int8) read by /layers/layers.0/MatMul_quant (MatMulInteger): all zeros — "
        "rel_l2 1 > 0.5, max_abs_over_range" in message
    )


def test_a_rescaled_qdq_weight_fails_as_rescaled(mlp_export: Path, tmp_path: Path) -> None:
    scales = [
        t.name
        for t in onnx.load(mlp_export / "mlp_qdq.onnx").graph.initializer
        if "layers.4" in t.name
    ]
    scale = next(name for name in scales if name.endswith("weight_scale"))
    damaged = rewrite(mlp_export / "mlp_qdq.onnx", tmp_path / "qdq.onnx", scale, lambda s: s * 3)
    message = failed_lines(compare_weights(mlp_export / "mlp.onnx", damaged, file_tier="int8"))
    assert "  layers.4.weight as layers.4.weight_quantized (DequantizeLinear, int8, per" in message
    assert "read by /layers/layers.4/MatMul (MatMul): rescaled x3 — rel_l2 2 > 0.5" in message


@pytest.mark.parametrize(
    ("damage", "diagnosis"),
    [
        (lambda packed: packed ^ 0x88, "sign or packing wrong"),  # signed nibbles stored unsigned
        (lambda packed: (packed << 4) | (packed >> 4), "sign or packing wrong"),  # swapped
    ],
    ids=["sign-bit-flipped", "mis-packed"],
)
def test_a_damaged_matmul_nbits_weight_fails(
    mlp_export: Path, tmp_path: Path, damage: Callable[[np.ndarray], np.ndarray], diagnosis: str
) -> None:
    damaged = rewrite(
        mlp_export / "mlp_int4.onnx", tmp_path / "int4.onnx", "layers.2.weight_Q4", damage
    )
    report = compare_weights(mlp_export / "mlp.onnx", damaged, file_tier="int4")
    message = failed_lines(report)
    assert (
        "  layers.2.weight as layers.2.weight_Q4 (MatMulNBits, packed 4-bit, blocks of 32 along "
        "K, tier int4) read by /layers/layers.2/MatMul_Q4 (com.microsoft::MatMulNBits): "
        f"{diagnosis} — rel_l2" in message
    )
    assert [c.reference for c in report.failed] == ["layers.2.weight"]


def test_a_square_weight_quantized_transposed_fails_as_transposed(
    mlp_export: Path, tmp_path: Path
) -> None:
    flipped = rewrite(mlp_export / "mlp.onnx", tmp_path / "t.onnx", "layers.2.weight", np.transpose)
    damaged = modelkit.quantize_int4_matmulnbits(flipped, tmp_path / "int4.onnx")
    message = failed_lines(compare_weights(mlp_export / "mlp.onnx", damaged, file_tier="int4"))
    assert "(com.microsoft::MatMulNBits): transposed — rel_l2" in message


# --------------------------------------------------------------------------------------------
# Hand-built forms: GatherBlockQuantized, QLinearMatMul, int4/uint4 DequantizeLinear, bf16
# --------------------------------------------------------------------------------------------


@pytest.fixture
def table_files(tmp_path: Path) -> tuple[Path, Path]:
    table = RNG.standard_normal((20, 64)).astype(np.float32)
    reference = weightkit.gather_reference(tmp_path / "ref.onnx", table)
    variant = weightkit.gather_block_quantized_variant(tmp_path / "int4.onnx", table)
    return reference, variant


def test_an_int4_gather_block_quantized_table_passes(table_files: tuple[Path, Path]) -> None:
    report = compare_weights(*table_files, file_tier="int4")
    assert report.passed, report.message()
    assert report.comparisons[0].tier == "int4"


def test_a_packed_4bit_table_with_the_wrong_sign_convention_fails(
    table_files: tuple[Path, Path], tmp_path: Path
) -> None:
    reference, healthy = table_files
    q = weightkit.initializer(healthy, "E_Q4").astype(np.int64)
    wrong = weightkit.packed_tensor("E_Q4", TensorProto.UINT4, q & 0x0F)
    damaged = weightkit.rewrite_tensor(healthy, tmp_path / "damaged.onnx", "E_Q4", wrong)
    report = compare_weights(reference, damaged, file_tier="int4")
    message = failed_lines(report)
    assert (
        "  E as E_Q4 (GatherBlockQuantized, uint4 4-bit, blocks of 16, tier int4) read by "
        "embed_Q4 (com.microsoft::GatherBlockQuantized):" in message
    )
    assert report.failed[0].statistics.rel_l2 > 1.0


def test_a_qlinear_matmul_weight_passes_and_its_negation_fails(tmp_path: Path) -> None:
    weight = RNG.standard_normal((32, 8)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    healthy = weightkit.qlinear_matmul_variant(tmp_path / "int8.onnx", weight)
    assert compare_weights(reference, healthy, file_tier="int8").passed
    damaged = rewrite(healthy, tmp_path / "damaged.onnx", "W_quantized", np.negative)
    message = failed_lines(compare_weights(reference, damaged, file_tier="int8"))
    assert "read by mm_quant (QLinearMatMul): sign-flipped — rel_l2 2 > 0.5" in message


@pytest.mark.parametrize("data_type", [TensorProto.INT4, TensorProto.UINT4])
def test_blockwise_int4_dequantize_linear_passes_and_a_zero_point_off_by_8_fails(
    tmp_path: Path, data_type: int
) -> None:
    weight = RNG.standard_normal((64, 8)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    q, scale, zero_point = weightkit.quantize_blocks(weight, 4, 16, 0, symmetric=False)
    if data_type == TensorProto.INT4:
        q, zero_point = q - 8, zero_point - 8
    healthy = weightkit.dequantize_linear_variant(
        tmp_path / "int4.onnx", q, scale, zero_point, data_type, axis=0, block_size=16
    )
    assert compare_weights(reference, healthy, file_tier="int4").passed
    # The writer's zero point of a signed-around-zero convention: every value shifts by ~8 steps.
    shifted = np.full_like(zero_point, 0 if data_type == TensorProto.UINT4 else -8)
    damaged = weightkit.dequantize_linear_variant(
        tmp_path / "damaged.onnx", q, scale, shifted, data_type, axis=0, block_size=16
    )
    message = failed_lines(compare_weights(reference, damaged, file_tier="int4"))
    assert "W as W_quantized (DequantizeLinear, " in message
    assert "blocks of 16 along axis 0, tier int4) read by mm (MatMul): shifted by" in message


def test_bfloat16_storage_passes_its_tier_and_a_rescaled_weight_fails(tmp_path: Path) -> None:
    weight = RNG.standard_normal((32, 16)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    healthy = weightkit.bfloat16_variant(tmp_path / "bf16.onnx", weight)
    report = compare_weights(reference, healthy, file_tier="bf16")
    assert report.passed, report.message()
    assert report.comparisons[0].tier == "bf16"
    assert 1e-3 < report.comparisons[0].statistics.rel_l2 < 1e-2
    damaged = weightkit.bfloat16_variant(tmp_path / "damaged.onnx", weight * 1.5)
    message = failed_lines(compare_weights(reference, damaged, file_tier="bf16"))
    assert "W (bfloat16, bfloat16, tier bf16) read by mm (MatMul): rescaled x1.5 — rel_l2 0.5" in (
        message
    )


# --------------------------------------------------------------------------------------------
# Non-finite values, layouts, SmoothQuant, names, skips
# --------------------------------------------------------------------------------------------


def fill_graph(path: Path, fill: np.ndarray) -> Path:
    """``Where(mask, x, fill)`` with a one-value fill constant, as masked_fill exports."""
    nodes = [helper.make_node("Where", ["mask", "x", "fill"], ["y"], name="masked_fill")]
    return weightkit.save(
        path,
        nodes,
        {"fill": fill},
        [("mask", TensorProto.BOOL, [4]), ("x", TensorProto.FLOAT, [4])],
        [("y", TensorProto.FLOAT, [4])],
        opset=17,
    )


def test_an_inf_fill_the_reference_has_too_is_inherited_but_an_overflow_fails(
    tmp_path: Path,
) -> None:
    reference = fill_graph(tmp_path / "ref.onnx", np.array([-np.inf], np.float32))
    inherited = compare_weights(reference, fill_graph(tmp_path / "a.onnx", np.float16([-np.inf])))
    assert inherited.passed and inherited.comparisons[0].statistics.inherited == 1
    finite = fill_graph(tmp_path / "finite.onnx", np.array([-70000.0], np.float32))
    clamped = compare_weights(finite, fill_graph(tmp_path / "b.onnx", np.float16([-65504.0])))
    assert clamped.passed and clamped.comparisons[0].statistics.out_of_range == 1
    overflow = compare_weights(finite, fill_graph(tmp_path / "c.onnx", np.float16([-np.inf])))
    assert "fill (float16, float16, tier fp16) read by masked_fill (Where): 1 NaN/Inf" in (
        failed_lines(overflow)
    )


def test_a_gemm_trans_b_reference_matches_a_matmul_nbits_variant(tmp_path: Path) -> None:
    weight = RNG.standard_normal((48, 8)).astype(np.float32)  # [K, N]
    reference = weightkit.save(
        tmp_path / "ref.onnx",
        [helper.make_node("Gemm", ["x", "W"], ["y"], name="mm", transB=1)],
        {"W": weight.T.copy()},  # stored [N, K]
        [("x", TensorProto.FLOAT, [2, 48])],
        [("y", TensorProto.FLOAT, [2, 8])],
    )
    variant = weightkit.matmul_nbits_variant(tmp_path / "int4.onnx", weight, 16)
    report = compare_weights(reference, variant, file_tier="int4")
    assert report.passed, report.message()


def test_a_non_square_weight_stored_transposed_fails_naming_the_layout(tmp_path: Path) -> None:
    weight = RNG.standard_normal((48, 8)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    q, scale, _ = weightkit.quantize_blocks(weight.T, 8, 48, 1, symmetric=True)
    variant = weightkit.dequantize_linear_variant(
        tmp_path / "int8.onnx", q, scale.reshape(-1), None, TensorProto.INT8, axis=0
    )
    message = failed_lines(compare_weights(reference, variant, file_tier="int8"))
    assert "stored transposed: its op reads [8, 48], the reference's reads [48, 8]" in message


def test_a_smooth_quant_scale_on_the_input_is_folded_into_the_weight(tmp_path: Path) -> None:
    weight = RNG.standard_normal((16, 4)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    smooth = RNG.uniform(0.5, 4.0, 16).astype(np.float32)

    def variant(path: Path, with_mul: bool) -> Path:
        nodes = [helper.make_node("MatMul", ["xs" if with_mul else "x", "W"], ["y"], name="mm")]
        if with_mul:
            nodes.insert(0, helper.make_node("Mul", ["x", "sq_scale"], ["xs"], name="sq_mul"))
        return weightkit.save(
            path,
            nodes,
            {"W": weight / smooth[:, None], "sq_scale": smooth.reshape(1, 16)},
            [("x", TensorProto.FLOAT, ["batch", 16])],
            [("y", TensorProto.FLOAT, ["batch", 4])],
        )

    folded = compare_weights(reference, variant(tmp_path / "sq.onnx", True))
    assert folded.passed, folded.message()
    assert folded.comparisons[0].notes == ("input scale of sq_mul (Mul) folded in (SmoothQuant)",)
    assert not compare_weights(reference, variant(tmp_path / "no_mul.onnx", False)).passed


def test_a_renamed_weight_is_found_through_the_node_that_reads_it(tmp_path: Path) -> None:
    weight = RNG.standard_normal((16, 4)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    renamed = weightkit.matmul_nbits_variant(tmp_path / "int4.onnx", weight, 16, name="t_91")
    report = compare_weights(reference, renamed, file_tier="int4")
    assert report.passed, report.message()
    assert [(c.reference, c.tensor) for c in report.comparisons] == [("W", "t_91_Q4")]


def test_unmatched_weights_are_listed_and_fail_above_the_allowed_share(tmp_path: Path) -> None:
    weight = RNG.standard_normal((16, 4)).astype(np.float32)
    reference = weightkit.matmul_reference(tmp_path / "ref.onnx", weight)
    other = weightkit.save(
        tmp_path / "other.onnx",
        [helper.make_node("MatMul", ["x", "fused_0"], ["y"], name="fused_mm")],
        {"fused_0": weight},
        [("x", TensorProto.FLOAT, ["batch", 16])],
        [("y", TensorProto.FLOAT, ["batch", 4])],
    )
    report = compare_weights(reference, other)
    assert report.unmatched_variant == ("fused_0",)
    assert [w.name for w in report.unmatched_reference] == ["W"]
    assert "1 reference weights (100% of the weight elements) have no form the check could" in (
        failed_lines(report)
    )
    accepted = compare_weights(reference, other, WeightSettings(max_unmatched_fraction=1.0))
    assert accepted.passed
    assert accepted.warnings() == (
        f"{other}: 1 reference weights not found in the variant (100% of the weight elements, "
        "e.g. W)",
    )


def test_skipped_weights_are_left_out(mlp_export: Path, tmp_path: Path) -> None:
    damaged = rewrite(
        mlp_export / "mlp_int4.onnx",
        tmp_path / "int4.onnx",
        "layers.2.weight_Q4",
        lambda p: p ^ 0x88,
    )
    report = compare_weights(
        mlp_export / "mlp.onnx", damaged, WeightSettings(skip=("layers.2.*",)), file_tier="int4"
    )
    assert report.passed, report.message()
    assert report.skipped == ("layers.2.weight", "layers.2.bias")


def test_the_report_is_plain_json(mlp_export: Path, tmp_path: Path) -> None:
    damaged = rewrite(
        mlp_export / "mlp_fp16.onnx",
        tmp_path / "fp16.onnx",
        "layers.0.weight",
        lambda v: v * np.inf,
    )
    document = compare_weights(mlp_export / "mlp.onnx", damaged, file_tier="fp16").to_json()
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    worst = next(w for w in document["weights"] if w["reference"] == "layers.0.weight")
    assert worst["passed"] is False
    assert worst["non_finite"] > 0
