"""Packed sub-byte weights of onnxruntime's contrib ops, unpacked to the float values they stand
for: MatMulNBits' ``[N, blocks, bytes]`` blobs and GatherBlockQuantized's tables.

Values come back as float32, as the kernels compute them. Layouts follow onnxruntime's CPU
kernels (``contrib_ops/cpu/quantization``), checked against onnxruntime itself by the unit
tests: values are packed low bits first; MatMulNBits' missing zero point is ``2 ** (bits - 1)``
and a float zero point is subtracted before scaling, ``(q - zero_point) * scale``;
GatherBlockQuantized reads uint8 data as packed ``bits``-wide values along its last axis with a
default zero point of ``2 ** (bits - 1)``, and int4 / uint4 data with a default zero point of 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ReadInput = Callable[[str], "np.ndarray | None"]
"""Reads an initializer by name (None when the name is empty or not an initializer)."""


def unpack_bits(packed: np.ndarray, bits: int) -> np.ndarray:
    """uint8 values -> ``bits``-wide unsigned values along the last axis, low bits first."""
    packed = np.asarray(packed).astype(np.uint8)
    if bits == 8:
        return packed.astype(np.float32)
    mask = (1 << bits) - 1
    parts = [(packed >> (bits * i)) & mask for i in range(8 // bits)]
    return np.stack(parts, axis=-1).reshape(*packed.shape[:-1], -1).astype(np.float32)


def matmul_nbits_weight(
    attributes: dict[str, Any], inputs: list[str], packed: np.ndarray, read: ReadInput
) -> tuple[np.ndarray, float] | str:
    """The ``[K, N]`` weight of a MatMulNBits node (the orientation MatMul's B has) and its
    largest scale, or why it cannot be read.

    B is uint8 ``[N, blocks, block_size * bits / 8]``; scales ``[N, blocks]`` (or flat); zero
    points packed like B per row (uint8) or float like the scales.
    """
    k, n = attributes.get("K"), attributes.get("N")
    bits, block_size = attributes.get("bits", 4), attributes.get("block_size")
    if not (k and n and block_size) or bits not in (2, 4, 8):
        return f"MatMulNBits with K={k}, N={n}, bits={bits}, block_size={block_size}"
    if len(inputs) > 4 and inputs[4]:
        return "MatMulNBits with g_idx (reordered rows)"
    blocks = -(-k // block_size)
    scales = read(inputs[2])
    if scales is None or scales.size != n * blocks:
        return f"MatMulNBits scales {inputs[2]!r} are not {n} x {blocks} values"
    scales = scales.astype(np.float32).reshape(n, blocks)
    quantized = unpack_bits(packed.reshape(n, -1), bits)[:, : blocks * block_size]
    if quantized.shape[1] != blocks * block_size:
        return f"MatMulNBits data holds {quantized.shape[1]} values a row, K={k} needs more"
    zero_point_name = inputs[3] if len(inputs) > 3 else ""
    raw_zero_points = read(zero_point_name) if zero_point_name else None
    if raw_zero_points is None:
        if zero_point_name:
            return f"MatMulNBits zero points {zero_point_name!r} are not an initializer"
        zero_points = np.full((n, blocks), 2.0 ** (bits - 1))
    elif raw_zero_points.dtype == np.uint8:
        zero_points = unpack_bits(raw_zero_points.reshape(n, -1), bits)[:, :blocks]
    else:
        zero_points = raw_zero_points.astype(np.float32).reshape(n, blocks)
    weights = quantized.reshape(n, blocks, block_size)
    weights -= zero_points[..., None]
    weights *= scales[..., None]
    return weights.reshape(n, -1)[:, :k].T, float(np.max(np.abs(scales)))


def gather_block_quantized_table(
    attributes: dict[str, Any], inputs: list[str], data: np.ndarray, data_type: int, read: ReadInput
) -> tuple[np.ndarray, float, int] | str:
    """The float table a GatherBlockQuantized node gathers from, its largest scale and its bits,
    or why it cannot be read."""
    from onnx import TensorProto

    bits = int(attributes.get("bits", 4))
    quantize_axis = int(attributes.get("quantize_axis", 1))
    block_size = int(attributes.get("block_size", 128))
    packed_uint8 = data_type == TensorProto.UINT8
    if packed_uint8:
        if bits not in (2, 4, 8):
            return f"GatherBlockQuantized uint8 data with bits={bits}"
        values = unpack_bits(data, bits)
        if quantize_axis % values.ndim != values.ndim - 1:
            return "GatherBlockQuantized uint8 data quantized along an axis that is not the last"
    else:
        values = data.astype(np.float32)
        bits = 4 if data_type in (TensorProto.INT4, TensorProto.UINT4) else 8
    scales = read(inputs[2])
    if scales is None or scales.ndim != values.ndim:
        return f"GatherBlockQuantized scales {inputs[2]!r} do not have the data's rank"
    axis = quantize_axis % values.ndim
    if block_size == 0:
        block_size = values.shape[axis]
    zero_point_name = inputs[3] if len(inputs) > 3 else ""
    raw_zero_points = read(zero_point_name) if zero_point_name else None
    if raw_zero_points is None:
        zero_points = np.full(scales.shape, 2.0 ** (bits - 1) if packed_uint8 else 0.0)
    elif packed_uint8:
        zero_points = unpack_bits(raw_zero_points, bits)[..., : scales.shape[-1]]
    else:
        zero_points = raw_zero_points.astype(np.float32)
    full_scales = blockwise(scales, values.shape, axis, block_size)
    full_zero_points = blockwise(zero_points, values.shape, axis, block_size)
    if full_scales is None or full_zero_points is None:
        return "GatherBlockQuantized scales or zero points do not fit its blocks"
    values -= full_zero_points
    values *= full_scales
    return values, float(np.max(np.abs(scales))), bits


def blockwise(
    param: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int
) -> np.ndarray | None:
    """A per-block scale or zero point repeated to the data's shape along ``axis``."""
    param = np.asarray(param).astype(np.float32)
    if param.ndim != len(shape):
        return None
    expanded = np.repeat(param, block_size, axis=axis)
    if expanded.shape[axis] < shape[axis]:
        return None
    expanded = expanded[(slice(None),) * axis + (slice(0, shape[axis]),)]
    return expanded if expanded.shape == shape else None
