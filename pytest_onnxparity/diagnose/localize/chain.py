"""The stored weights behind a tensor: in the variant, the nodes of its segment that read an
initializer as a weight — through dequantization chains, so the DequantizeLinear feeding a
Gather is named, not just the Gather — and the reference weight each one stands for.

An embedding stored as packed 4-bit and dequantized before its Gather shows up as the
DequantizeLinear (or GatherBlockQuantized, MatMulNBits…) and its ``…_Q4`` initializer, with the
weight's own error where weight-space parity measured it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_onnxparity.diagnose.localize.prior import WeightPrior
from pytest_onnxparity.diagnose.localize.records import WeightSource
from pytest_onnxparity.onnxfile.weight_forms import QUANTIZED_DATA_SLOTS, WEIGHT_SLOTS

# Gather reads its table at slot 0; quantize_dynamic's Gather reads the integer table itself.
_READS_WEIGHT = {**WEIGHT_SLOTS, **QUANTIZED_DATA_SLOTS}


def initializers_read(nodes: Iterable[Any], initializers: Mapping[str, Any]) -> tuple[str, ...]:
    """The initializers the ``nodes`` read (any slot), in first-read order."""
    read: dict[str, None] = {}
    for node in nodes:
        for name in node.input:
            if name in initializers:
                read[name] = None
    return tuple(read)


def weight_sources(
    variant_nodes: Sequence[Any],
    variant_initializers: Mapping[str, Any],
    reference_weights: Sequence[str],
    prior: WeightPrior,
) -> tuple[WeightSource, ...]:
    """The stored weights the ``variant_nodes`` (one tensor's segment) read.

    A node reads a stored weight where an initializer sits in a weight or quantized-data slot
    (``MatMul`` B, ``DequantizeLinear`` x, ``MatMulNBits`` B, ``Gather`` data…), or where
    weight-space parity has a verdict for it (a bias). ``reference_weights`` are the
    initializers the reference's side of the segment reads: a stored name equal to one of them,
    or one of them followed by ``_…`` (``W_quantized``, ``W_Q4``), stands for it. Failing
    weights come first, then quantized ones.
    """
    sources = []
    seen: set[tuple[str, str]] = set()
    for node in variant_nodes:
        for slot, name in enumerate(node.input):
            tensor = variant_initializers.get(name)
            if tensor is None or (node.name, name) in seen:
                continue
            verdict = prior.by_stored.get(name) or prior.by_weight.get(name)
            if slot not in _READS_WEIGHT.get(node.op_type, ()) and verdict is None:
                continue
            seen.add((node.name, name))
            weight = verdict.weight if verdict is not None else _owner(name, reference_weights)
            sources.append(
                WeightSource(
                    node=node.name,
                    op_type=node.op_type,
                    initializer=name,
                    stored_as=_stored_as(node, tensor),
                    weight=weight,
                    rel_l2=verdict.rel_l2 if verdict is not None else None,
                    failed=verdict.failed if verdict is not None else None,
                )
            )
    sources.sort(key=lambda s: (s.failed is not True, s.op_type not in QUANTIZED_DATA_SLOTS))
    return tuple(sources)


def _owner(stored: str, reference_weights: Sequence[str]) -> str:
    """The reference weight a stored name stands for: itself, or the longest ``W`` with the
    stored name ``W_…``; ``""`` when none."""
    owners = [w for w in reference_weights if stored == w or stored.startswith(w + "_")]
    return max(owners, key=len, default="")


def _stored_as(node: Any, tensor: Any) -> str:
    """``uint8 [384, 1536]``, or for packed blocks ``4-bit packed in uint8 [N, blocks, bytes]``."""
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type).name
    shape = list(tensor.dims)
    bits = next((a.i for a in node.attribute if a.name == "bits"), None)
    if node.op_type in ("MatMulNBits", "GatherBlockQuantized") and bits:
        return f"{bits}-bit packed in {dtype} {shape}"
    return f"{dtype} {shape}"


# Ops that compute on 8-bit integers whatever their inputs' names say.
_EIGHT_BIT_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "QLinearMatMul",
        "QLinearConv",
        "QGemm",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "DynamicQuantizeLSTM",
    }
)
_PACKED_OPS = frozenset({"MatMulNBits", "GatherBlockQuantized", "MatMulBnb4"})
_BITS = {"int2": 2, "uint2": 2, "int4": 4, "uint4": 4, "int8": 8, "uint8": 8, "int16": 16}
_NARROW_FLOATS = ("bfloat16", "float16")


def segment_precision(
    nodes: Sequence[Any], initializers: Mapping[str, Any], dtypes: Mapping[str, str]
) -> str:
    """The narrowest precision a segment computes in: ``"4-bit"``, ``"8-bit"`` (any integer
    width as ``"<bits>-bit"``), ``"bfloat16"``, ``"float16"`` or ``"float"``.

    Packed ops give their ``bits``; a DequantizeLinear its stored integer type; integer ops
    eight bits; otherwise the narrowest float type among the segment's outputs (``dtypes``).
    """
    from onnx import helper

    bits = []
    narrow: set[str | None] = set()
    for node in nodes:
        if node.op_type in _PACKED_OPS:
            bits.append(next((a.i for a in node.attribute if a.name == "bits"), 4))
        elif node.op_type in _EIGHT_BIT_OPS:
            bits.append(8)
        elif node.op_type in ("DequantizeLinear", "QuantizeLinear"):
            tensor = initializers.get(node.input[0]) if node.input else None
            name = helper.tensor_dtype_to_np_dtype(tensor.data_type).name if tensor else "int8"
            bits.append(_BITS.get(name, 8))
        narrow.update(dtypes.get(output) for output in node.output)
    if bits:
        return f"{min(bits)}-bit"
    return next((name for name in _NARROW_FLOATS if name in narrow), "float")
