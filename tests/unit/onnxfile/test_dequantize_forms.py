"""Each quantized weight form, dequantized by the package, against onnxruntime running the same
graph: a MatMul-like form multiplied by the identity gives its ``[K, N]`` weight, a gathered
form gathered at every row gives its table. onnxruntime is the oracle of every layout detail
(nibble order, default zero points, block edges, float zero points)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import weightkit
from onnx import TensorProto

from pytest_onnxparity.compare.weight_space.matching import match_weights
from pytest_onnxparity.compare.weight_space.report import UncomparedForm
from pytest_onnxparity.compare.weight_space.run import AlignedForm, iter_aligned_forms
from pytest_onnxparity.onnxfile.graph import GraphIndex, load_structure

RNG = np.random.default_rng(7)
K, N = 40, 6  # K is not a multiple of the 16-wide blocks: the last block is partial


def aligned(reference: Path, variant: Path) -> AlignedForm:
    """The one compared form of the variant, in the reference's layout."""
    reference_index = GraphIndex.of(load_structure(reference))
    variant_index = GraphIndex.of(load_structure(variant))
    matching = match_weights(reference_index, variant_index)
    forms = list(iter_aligned_forms(reference, variant, reference_index, variant_index, matching))
    assert len(forms) == 1, forms
    form = forms[0]
    assert not isinstance(form, UncomparedForm), form.reason
    return form


def onnxruntime_weight(variant: Path, k: int) -> np.ndarray:
    session = ort.InferenceSession(str(variant), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": np.eye(k, dtype=np.float32)})[0], np.float64)


def onnxruntime_table(variant: Path, rows: int) -> np.ndarray:
    session = ort.InferenceSession(str(variant), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"ids": np.arange(rows, dtype=np.int64)})[0], np.float64)


@pytest.fixture
def weight() -> np.ndarray:
    return RNG.standard_normal((K, N)).astype(np.float32)


@pytest.fixture
def reference(tmp_path: Path, weight: np.ndarray) -> Path:
    return weightkit.matmul_reference(tmp_path / "ref.onnx", weight)


def assert_matches_onnxruntime(reference: Path, variant: Path) -> AlignedForm:
    """Equal up to float32 rounding in onnxruntime's MatMul (values are of order 1; a layout
    mistake is off by that much, not by 1e-6)."""
    form = aligned(reference, variant)
    np.testing.assert_allclose(form.values, onnxruntime_weight(variant, K), rtol=1e-6, atol=1e-6)
    return form


@pytest.mark.parametrize(
    ("data_type", "axis", "block_size", "symmetric"),
    [
        (TensorProto.INT8, 1, 0, True),
        (TensorProto.UINT8, 1, 0, False),
        (TensorProto.INT4, 0, 16, True),
        (TensorProto.INT4, 0, 16, False),
        (TensorProto.UINT4, 0, 16, False),
    ],
    ids=["int8-per-axis", "uint8-per-axis-zp", "int4-blocks", "int4-blocks-zp", "uint4-blocks-zp"],
)
def test_dequantize_linear_of_every_integer_type_reads_as_onnxruntime_does(
    tmp_path: Path,
    reference: Path,
    weight: np.ndarray,
    data_type: int,
    axis: int,
    block_size: int,
    symmetric: bool,
) -> None:
    bits = 4 if data_type in (TensorProto.INT4, TensorProto.UINT4) else 8
    q, scale, zero_point = weightkit.quantize_blocks(
        weight,
        bits,
        block_size or weight.shape[1 - axis],
        1 - axis if not block_size else axis,
        symmetric,
    )
    if data_type in (TensorProto.INT4, TensorProto.INT8) and not symmetric:
        q, zero_point = q - 2 ** (bits - 1), zero_point - 2 ** (bits - 1)  # signed, with zp
    if not block_size:
        scale, zero_point = scale.reshape(-1), zero_point.reshape(-1)
    variant = weightkit.dequantize_linear_variant(
        tmp_path / "variant.onnx", q, scale, zero_point, data_type, axis, block_size
    )
    form = assert_matches_onnxruntime(reference, variant)
    assert form.dequantized.bits == bits


@pytest.mark.parametrize(
    ("symmetric", "float_zero_points"),
    [(True, False), (False, False), (False, True)],
    ids=["symmetric", "packed-zero-points", "float-zero-points"],
)
def test_matmul_nbits_reads_as_onnxruntime_does(
    tmp_path: Path,
    reference: Path,
    weight: np.ndarray,
    symmetric: bool,
    float_zero_points: bool,
) -> None:
    variant = weightkit.matmul_nbits_variant(
        tmp_path / "variant.onnx", weight, 16, symmetric, float_zero_points
    )
    form = assert_matches_onnxruntime(reference, variant)
    assert form.dequantized.layout == "packed 4-bit, blocks of 16 along K"


@pytest.mark.parametrize(
    ("data_type", "symmetric"),
    [
        (TensorProto.INT4, True),
        (TensorProto.UINT4, False),
        (TensorProto.UINT8, True),
        (TensorProto.UINT8, False),
    ],
    ids=["int4", "uint4-zero-points", "packed-uint8-default-zero-point", "packed-uint8-zp"],
)
def test_gather_block_quantized_reads_as_onnxruntime_does(
    tmp_path: Path, data_type: int, symmetric: bool
) -> None:
    table = RNG.standard_normal((12, 48)).astype(np.float32)
    reference = weightkit.gather_reference(tmp_path / "ref.onnx", table)
    variant = weightkit.gather_block_quantized_variant(
        tmp_path / "variant.onnx", table, data_type, 16, symmetric
    )
    form = aligned(reference, variant)
    np.testing.assert_allclose(form.values, onnxruntime_table(variant, 12), rtol=1e-6, atol=1e-7)


def test_qlinear_matmul_weight_is_its_integers_minus_zero_point_times_scale(
    tmp_path: Path, reference: Path, weight: np.ndarray
) -> None:
    variant = weightkit.qlinear_matmul_variant(tmp_path / "variant.onnx", weight)
    form = aligned(reference, variant)
    q = weightkit.initializer(variant, "W_quantized").astype(np.float64)
    scale = weightkit.initializer(variant, "W_scale").astype(np.float64)
    np.testing.assert_allclose(form.values, q * scale, rtol=1e-6)
    assert form.dequantized.layout == "int8, per axis -1"


def test_bfloat16_storage_reads_its_rounded_values(
    tmp_path: Path, reference: Path, weight: np.ndarray
) -> None:
    import ml_dtypes

    variant = weightkit.bfloat16_variant(tmp_path / "variant.onnx", weight)
    form = aligned(reference, variant)
    expected = weight.astype(ml_dtypes.bfloat16).astype(np.float64)
    np.testing.assert_allclose(form.values, expected, rtol=1e-6)
    assert form.dequantized.float_type == "bfloat16"


def test_onnxruntime_dynamic_quantization_per_channel_reads_as_its_scales_say(
    tmp_path: Path, reference: Path, weight: np.ndarray
) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    variant = tmp_path / "int8.onnx"
    quantize_dynamic(reference, variant, weight_type=QuantType.QInt8, per_channel=True)
    form = aligned(reference, variant)
    q = weightkit.initializer(variant, "W_quantized").astype(np.float64)
    scale = weightkit.initializer(variant, "W_scale").astype(np.float64)
    np.testing.assert_allclose(form.values, q * scale.reshape(1, -1), rtol=1e-6)
    assert form.form.storage == "MatMulInteger"


def signed_nibbles_stored_unsigned(path: Path, dst: Path) -> Path:
    """The wrong sign convention: an INT4 table's two's-complement nibbles written as UINT4
    (no zero point, so onnxruntime reads them unsigned, around 0)."""
    q = weightkit.initializer(path, "E_Q4").astype(np.int64)
    wrong = weightkit.packed_tensor("E_Q4", TensorProto.UINT4, q & 0x0F)
    return weightkit.rewrite_tensor(path, dst, "E_Q4", wrong)


def test_a_signed_table_stored_as_uint4_reads_as_onnxruntime_reads_it(tmp_path: Path) -> None:
    table = RNG.standard_normal((12, 48)).astype(np.float32)
    reference = weightkit.gather_reference(tmp_path / "ref.onnx", table)
    healthy = weightkit.gather_block_quantized_variant(tmp_path / "int4.onnx", table)
    damaged = signed_nibbles_stored_unsigned(healthy, tmp_path / "damaged.onnx")
    form = aligned(reference, damaged)
    np.testing.assert_allclose(form.values, onnxruntime_table(damaged, 12), rtol=1e-6, atol=1e-7)
