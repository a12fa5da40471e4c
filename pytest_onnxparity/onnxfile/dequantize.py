"""Dequantization: the float values a quantized weight of a variant stands for.

Each layout follows onnxruntime's operator documentation (ai.onnx DequantizeLinear, the
com.microsoft contrib ops): per-tensor, per-axis and blockwise scales with optional zero points,
and MatMulNBits' packed 2/4/8-bit blocks. Values are read one tensor at a time, from external
data files too, so memory holds at most one weight and its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.onnxfile.graph import GraphIndex, float_element_types
from pytest_onnxparity.onnxfile.weight_forms import FLOAT_STORAGE, WeightForm

MANTISSA_BITS = {"float64": 52, "float32": 23, "float16": 10, "bfloat16": 7}
"""Explicit mantissa bits of each float type: its relative resolution is 2 ** -bits."""
_SMALLEST_SUBNORMAL = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24}


class TensorReadError(Exception):
    """A tensor's values cannot be read (its external data is missing or short)."""


def read_array(tensor: Any, base_dir: Path) -> np.ndarray:
    """The tensor's values, read from its sidecar file without keeping them in the model."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_location == TensorProto.EXTERNAL:
        detached = TensorProto()
        detached.CopyFrom(tensor)
        tensor = detached
    from onnx.checker import ValidationError  # a sidecar onnx refuses (a symbolic link)

    try:
        return numpy_helper.to_array(tensor, base_dir=str(base_dir))
    except (OSError, ValueError, ValidationError) as error:
        raise TensorReadError(
            f"{base_dir}: cannot read tensor {tensor.name!r} ({error}); copy the complete "
            "external data file(s) next to the model"
        ) from None


# (op type, data slot) -> (scale slot, zero-point slot, default axis). A slot of None means the
# op does not take it: onnxruntime's quantizers store it as "<weight>_scale" / "_zero_point".
_QUANT_PARAMS: Mapping[tuple[str, int], tuple[int | None, int | None, int]] = {
    ("DequantizeLinear", 0): (1, 2, 1),
    ("QLinearMatMul", 0): (1, 2, -1),
    ("QLinearMatMul", 3): (4, 5, -1),
    ("QLinearConv", 3): (4, 5, 0),
    ("QGemm", 0): (1, 2, -1),
    ("QGemm", 3): (4, 5, -1),
    ("DynamicQuantizeMatMul", 1): (2, 3, -1),
    ("MatMulIntegerToFloat", 0): (2, 4, -1),
    ("MatMulIntegerToFloat", 1): (3, 5, -1),
    ("MatMulInteger", 0): (None, 2, -1),
    ("MatMulInteger", 1): (None, 3, -1),
    ("ConvInteger", 1): (None, 3, 0),
    ("GatherBlockQuantized", 0): (2, 3, 1),
    # quantize_dynamic gathers rows of the integer table, then dequantizes them.
    ("Gather", 0): (None, None, 0),
}


def dequantize(
    form: WeightForm, index: GraphIndex, base_dir: Path
) -> tuple[np.ndarray, float] | None:
    """The float values a form stands for and its resolution (the largest quantization step, or
    the float type's rounding step at the tensor's peak); None when its layout is unknown."""
    raw = read_array(index.initializers[form.tensor], base_dir)
    if form.storage == FLOAT_STORAGE or form.storage in MANTISSA_BITS:
        values = raw.astype(np.float64)
        dtype = float_element_types()[index.initializers[form.tensor].data_type]
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        step = max(peak * 2.0 ** -MANTISSA_BITS[dtype], _SMALLEST_SUBNORMAL.get(dtype, 0.0))
        return values, step
    node = form.consumer
    if node.op_type == "MatMulNBits" and form.slot == 1:
        return _dequantize_matmul_nbits(node, raw, index, base_dir)
    params = _QUANT_PARAMS.get((node.op_type, form.slot))
    if params is None:
        return None
    scale_slot, zero_point_slot, axis = params
    attributes = _attributes(node)
    block_size = 0
    if node.op_type == "DequantizeLinear":
        axis, block_size = attributes.get("axis", 1), attributes.get("block_size", 0)
    elif node.op_type == "GatherBlockQuantized":
        axis, block_size = attributes.get("quantize_axis", 1), attributes.get("block_size", 128)
    scale_name = (
        _input(node, scale_slot) if scale_slot is not None else f"{form.reference_name}_scale"
    )
    scale = _initializer_values(index, scale_name, base_dir)
    if scale is None:
        return None
    zero_point_name = (
        _input(node, zero_point_slot)
        if zero_point_slot is not None
        else f"{form.reference_name}_zero_point"
    )
    zero_point = _initializer_values(index, zero_point_name, base_dir)
    if zero_point is None:
        zero_point = np.asarray(_default_zero_point(node, index.initializers[form.tensor]))
    data = raw.astype(np.float64)
    scale_full = _broadcast(scale, data.shape, axis, block_size)
    zero_point_full = _broadcast(zero_point, data.shape, axis, block_size)
    if scale_full is None or zero_point_full is None:
        return None
    return (data - zero_point_full) * scale_full, float(np.max(np.abs(scale)))


def _dequantize_matmul_nbits(
    node: Any, packed: np.ndarray, index: GraphIndex, base_dir: Path
) -> tuple[np.ndarray, float] | None:
    """The [K, N] weight of a com.microsoft MatMulNBits node.

    Layout (onnxruntime ContribOperators.md): B is uint8 [N, blocks, block_size * bits / 8],
    values packed low bits first; scales [N, blocks] (or flat); zero points packed like B per
    row, or float like scales, default 2^(bits - 1). Rows reordered by g_idx are not handled.
    """
    attributes = _attributes(node)
    k, n = attributes.get("K"), attributes.get("N")
    bits, block_size = attributes.get("bits", 4), attributes.get("block_size")
    if not (k and n and block_size) or bits not in (2, 4, 8) or _input(node, 4):
        return None
    blocks = -(-k // block_size)
    scales = _initializer_values(index, _input(node, 2), base_dir)
    if scales is None or scales.size != n * blocks:
        return None
    scales = scales.reshape(n, blocks)
    quantized = _unpack_bits(packed.reshape(n, -1), bits)[:, : blocks * block_size]
    zero_point_name = _input(node, 3)
    if not zero_point_name:
        zero_points = np.full((n, blocks), 2.0 ** (bits - 1))
    else:
        zero_point_tensor = index.initializers.get(zero_point_name)
        if zero_point_tensor is None:
            return None
        raw_zero_points = read_array(zero_point_tensor, base_dir)
        if raw_zero_points.dtype == np.uint8:
            zero_points = _unpack_bits(raw_zero_points.reshape(n, -1), bits)[:, :blocks]
        else:
            zero_points = raw_zero_points.astype(np.float64).reshape(n, blocks)
    weights = (quantized.reshape(n, blocks, block_size) - zero_points[..., None]) * scales[
        ..., None
    ]
    return weights.reshape(n, -1)[:, :k].T, float(np.max(np.abs(scales)))


def _unpack_bits(packed: np.ndarray, bits: int) -> np.ndarray:
    """uint8 rows -> rows of ``bits``-wide unsigned values, low bits first, as float64."""
    packed = packed.astype(np.uint8)
    if bits == 8:
        return packed.astype(np.float64)
    mask = (1 << bits) - 1
    parts = [(packed >> (bits * i)) & mask for i in range(8 // bits)]
    return np.stack(parts, axis=-1).reshape(packed.shape[0], -1).astype(np.float64)


def _broadcast(
    param: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int
) -> np.ndarray | None:
    """Scale or zero point expanded to the data's shape: per tensor, per axis or per block."""
    param = param.astype(np.float64)
    if param.size == 1:
        return param.reshape(())
    if not shape:
        return None
    axis %= len(shape)
    if block_size:
        if param.ndim != len(shape):
            return None
        expanded = np.repeat(param, block_size, axis=axis)
        expanded = np.take(expanded, np.arange(shape[axis]), axis=axis)
        return expanded if expanded.shape == shape else None
    if param.ndim == 1 and param.shape[0] == shape[axis]:
        return param.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return param if param.shape == shape else None


def _default_zero_point(node: Any, data: Any) -> float:
    from onnx import TensorProto

    if node.op_type == "GatherBlockQuantized" and data.data_type == TensorProto.UINT4:
        return 8.0
    return 0.0


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _input(node: Any, slot: int) -> str:
    return node.input[slot] if slot < len(node.input) else ""


def _initializer_values(index: GraphIndex, name: str, base_dir: Path) -> np.ndarray | None:
    tensor = index.initializers.get(name) if name else None
    return None if tensor is None else read_array(tensor, base_dir)
