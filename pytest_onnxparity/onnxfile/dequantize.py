"""Dequantization: the float values a quantized weight of a variant stands for.

Each layout follows onnxruntime's operator documentation (ai.onnx DequantizeLinear, the
com.microsoft contrib ops): per-tensor, per-axis and blockwise scales with optional zero points,
of every integer type (int2/int4 packed, int8, int16, int32, signed or not) and float8 data;
MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv, QGemm, DynamicQuantizeMatMul,
MatMulIntegerToFloat, quantize_dynamic's integer Gather tables, and the packed layouts of
MatMulNBits and GatherBlockQuantized (:mod:`pytest_onnxparity.onnxfile.packed`). Values are read
one tensor at a time, from external data files too, so memory holds at most one weight and its
parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.onnxfile.graph import GraphIndex, float_element_types
from pytest_onnxparity.onnxfile.packed import (
    blockwise,
    gather_block_quantized_table,
    matmul_nbits_weight,
)
from pytest_onnxparity.onnxfile.streamed import is_deferred, read_deferred
from pytest_onnxparity.onnxfile.weight_forms import FLOAT_STORAGE, WeightForm

MANTISSA_BITS = {"float64": 52, "float32": 23, "float16": 10, "bfloat16": 7}
"""Explicit mantissa bits of each float type: its relative resolution is 2 ** -bits."""
_SMALLEST_SUBNORMAL = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24}
FLOAT_BITS = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 16}


class TensorReadError(Exception):
    """A tensor's values cannot be read (its external data is missing or short)."""


def read_array(tensor: Any, base_dir: Path) -> np.ndarray:
    """The tensor's values, read from its sidecar file (or, for a model from
    :func:`~pytest_onnxparity.onnxfile.streamed.load_streamed`, its model file) without keeping
    them in the model."""
    from onnx import TensorProto, numpy_helper
    from onnx.checker import ValidationError  # a sidecar onnx refuses (a symbolic link)

    if is_deferred(tensor):
        try:
            return read_deferred(tensor, base_dir)
        except OSError as error:
            raise TensorReadError(
                f"{base_dir}: cannot read tensor {tensor.name!r} ({error}); the model file "
                "changed while it was checked, run again"
            ) from None
    if tensor.data_location == TensorProto.EXTERNAL:
        detached = TensorProto()
        detached.CopyFrom(tensor)
        tensor = detached

    try:
        return numpy_helper.to_array(tensor, base_dir=str(base_dir))
    except (OSError, ValueError, ValidationError) as error:
        raise TensorReadError(
            f"{base_dir}: cannot read tensor {tensor.name!r} ({error}); copy the complete "
            "external data file(s) next to the model"
        ) from None


@dataclass(frozen=True)
class Dequantized:
    """The float values of one weight form, as its consumer reads them.

    ``values`` are float32 (float64 for float64 storage), as onnxruntime's kernels compute
    them, in the orientation the reading op uses (MatMulNBits' ``[N, K]``
    storage comes back as MatMul's ``[K, N]``); ``step`` is the resolution (the largest
    quantization step, or the float type's rounding step at the tensor's peak); ``bits`` the
    bits per stored value; ``float_type`` the storage type name of a float form (None when
    quantized); ``layout`` says how it was read (``int4, blocks of 32 along axis 0``).
    """

    values: np.ndarray
    step: float
    bits: int
    float_type: str | None
    layout: str


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
    # quantize_dynamic gathers rows of the integer table, then dequantizes them.
    ("Gather", 0): (None, None, 0),
}


def dequantize(
    form: WeightForm, index: GraphIndex, base_dir: Path
) -> tuple[np.ndarray, float] | None:
    """The float values a form stands for and its resolution; None when its layout is unknown."""
    result = dequantize_form(form, index, base_dir)
    return None if isinstance(result, str) else (result.values, result.step)


def dequantize_form(form: WeightForm, index: GraphIndex, base_dir: Path) -> Dequantized | str:
    """The float values a form stands for, or a short reason why its layout cannot be read."""
    tensor = index.initializers[form.tensor]
    raw = read_array(tensor, base_dir)
    floats = float_element_types()
    if form.storage == FLOAT_STORAGE or form.storage in MANTISSA_BITS:
        dtype = floats[tensor.data_type]
        values = raw if raw.dtype == np.float64 else raw.astype(np.float32)
        peak = _finite_peak(values)
        step = max(peak * 2.0 ** -MANTISSA_BITS[dtype], _SMALLEST_SUBNORMAL.get(dtype, 0.0))
        return Dequantized(values, step, FLOAT_BITS[dtype], dtype, dtype)
    node = form.consumer
    attributes = _attributes(node)
    inputs = list(node.input)

    def read(name: str) -> np.ndarray | None:
        return _initializer_values(index, name, base_dir)

    if node.op_type == "MatMulNBits" and form.slot == 1:
        weight = matmul_nbits_weight(attributes, inputs, raw, read)
        if isinstance(weight, str):
            return weight
        bits, block_size = attributes.get("bits", 4), attributes.get("block_size")
        layout = f"packed {bits}-bit, blocks of {block_size} along K"
        return Dequantized(weight[0], weight[1], int(bits), None, layout)
    if node.op_type == "GatherBlockQuantized" and form.slot == 0:
        table = gather_block_quantized_table(attributes, inputs, raw, tensor.data_type, read)
        if isinstance(table, str):
            return table
        block = attributes.get("block_size", 128)
        layout = f"{_type_name(tensor.data_type)} {table[2]}-bit, blocks of {block}"
        return Dequantized(table[0], table[1], table[2], None, layout)
    return _dequantize_linear(form, node, attributes, raw, tensor.data_type, index, read)


def _finite_peak(values: np.ndarray) -> float:
    """The largest finite magnitude in ``values`` (0 when none is): from the minimum and the
    maximum when both are finite, without a masked copy of the tensor."""
    if not values.size:
        return 0.0
    low, high = float(values.min()), float(values.max())
    if math.isfinite(low) and math.isfinite(high):
        return max(-low, high)
    finite = values[np.isfinite(values)]
    return float(np.max(np.abs(finite))) if finite.size else 0.0


def _dequantize_linear(
    form: WeightForm,
    node: Any,
    attributes: dict[str, Any],
    raw: np.ndarray,
    data_type: int,
    index: GraphIndex,
    read: Any,
) -> Dequantized | str:
    """``(q - zero_point) * scale`` with per-tensor, per-axis or blockwise parameters."""
    params = _QUANT_PARAMS.get((node.op_type, form.slot))
    if params is None:
        return f"{node.op_type} input {form.slot} is not a layout this check reads"
    scale_slot, zero_point_slot, axis = params
    block_size = 0
    if node.op_type == "DequantizeLinear":
        axis, block_size = attributes.get("axis", 1), attributes.get("block_size", 0)
    elif node.op_type == "QGemm" and form.slot == 3 and attributes.get("transB", 0):
        axis = 0  # B stored [N, K]: one scale per row
    scale_name, zero_point_name = _parameter_names(form, node, scale_slot, zero_point_slot, index)
    scale = read(scale_name)
    if scale is None:
        return f"no scale found for {form.tensor!r} (looked for {scale_name!r})"
    zero_point = read(zero_point_name)
    if zero_point is None:
        zero_point = np.zeros(())
    data = raw.astype(np.float32)
    scale_full = _broadcast(scale, data.shape, axis, block_size)
    zero_point_full = _broadcast(zero_point, data.shape, axis, block_size)
    if scale_full is None or zero_point_full is None:
        return (
            f"scale {list(scale.shape)} or zero point {list(zero_point.shape)} does not fit "
            f"data {list(data.shape)} (axis {axis}, block size {block_size})"
        )
    bits = _integer_bits(data_type)
    if block_size:
        layout = f"{_type_name(data_type)}, blocks of {block_size} along axis {axis}"
    elif scale.size == 1:
        layout = f"{_type_name(data_type)}, per tensor"
    else:
        layout = f"{_type_name(data_type)}, per axis {axis}"
    data -= zero_point_full
    data *= scale_full
    return Dequantized(data, float(np.max(np.abs(scale))), bits, None, layout)


def _parameter_names(
    form: WeightForm,
    node: Any,
    scale_slot: int | None,
    zero_point_slot: int | None,
    index: GraphIndex,
) -> tuple[str, str]:
    """Where the scale and zero point of a form are: the op's own inputs, the DequantizeLinear
    that quantize_dynamic puts after an integer Gather, or onnxruntime's naming convention
    (``W_scale`` / ``W_zero_point`` beside ``W_quantized``)."""
    if node.op_type == "Gather":
        for reader, slot in index.consumers.get(node.output[0], ()):
            if reader.op_type == "DequantizeLinear" and slot == 0:
                return _input(reader, 1), _input(reader, 2)
    scale = _input(node, scale_slot) if scale_slot is not None else ""
    zero_point = _input(node, zero_point_slot) if zero_point_slot is not None else ""
    bases = [form.tensor.removesuffix("_quantized"), form.reference_name]
    if not scale:
        scale = next((f"{b}_scale" for b in bases if f"{b}_scale" in index.initializers), "")
    if not zero_point and zero_point_slot is None:
        zero_point = next(
            (f"{b}_zero_point" for b in bases if f"{b}_zero_point" in index.initializers), ""
        )
    return scale or f"{bases[0]}_scale", zero_point


def _broadcast(
    param: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int
) -> np.ndarray | None:
    """Scale or zero point expanded to the data's shape: per tensor, per axis or per block."""
    param = param.astype(np.float32)
    if param.size == 1:
        return param.reshape(())
    if not shape:
        return None
    axis %= len(shape)
    if block_size:
        return blockwise(param, shape, axis, block_size)
    if param.ndim == 1 and param.shape[0] == shape[axis]:
        return param.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    return param if param.shape == shape else None


def _integer_bits(data_type: int) -> int:
    from onnx import helper

    name = _type_name(data_type)
    if name.startswith("float4") or name.endswith("int4"):
        return 4
    if name.endswith("int2"):
        return 2
    return int(np.dtype(helper.tensor_dtype_to_np_dtype(data_type)).itemsize * 8)


def _type_name(data_type: int) -> str:
    from onnx import TensorProto

    return str(TensorProto.DataType.Name(data_type)).lower()


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def _input(node: Any, slot: int) -> str:
    return node.input[slot] if slot < len(node.input) else ""


def _initializer_values(index: GraphIndex, name: str, base_dir: Path) -> np.ndarray | None:
    tensor = index.initializers.get(name) if name else None
    return None if tensor is None else read_array(tensor, base_dir)
