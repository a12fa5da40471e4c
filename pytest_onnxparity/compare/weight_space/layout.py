"""How a weight is read, so a variant's form is compared in the reference's layout.

A *read* is the kind of input a weight ends up in (MatMul's B or A, a Gather table, a Conv
kernel) and whether a Transpose, or Gemm's ``transB``, flips it on the way. Dequantized forms
come back as their op reads them (MatMulNBits' ``[N, K]`` storage as MatMul's ``[K, N]``); the
form is then flipped where the reference reads its weight flipped (a Gemm with ``transB`` in
the reference, a MatMulNBits in the variant). A form whose layout still differs (a non-square
weight stored transposed without anything that flips it back) is a layout problem.

Also here: the SmoothQuant scale a variant may put on a MatMul's input (``Mul(x, s)`` that only
the variant has, as nncf's ``nncf_smooth_quant`` and neural-compressor's smoothing do), folded
into the weight: ``(x * s) @ W' == x @ (diag(s) W')``, so ``diag(s) W'`` is what stands for the
reference's ``W``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_onnxparity.onnxfile.dequantize import read_array
from pytest_onnxparity.onnxfile.graph import PASS_THROUGH_OPS, GraphIndex, node_label
from pytest_onnxparity.onnxfile.weight_forms import STAND_IN_SLOTS

_MATMUL_B = STAND_IN_SLOTS[("MatMul", 1)]
_MATMUL_A = STAND_IN_SLOTS[("MatMul", 0)]
_GATHER = STAND_IN_SLOTS[("Gather", 0)]
_CONV = STAND_IN_SLOTS[("Conv", 1)]
_TRANS_ATTRIBUTE = {"matmul-B": "transB", "matmul-A": "transA"}
_QUANTIZE_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


@dataclass(frozen=True)
class Read:
    """One op reading a weight: ``kind`` (``matmul-B``, ``matmul-A``, ``gather``, ``conv``, or
    ``<OpType>:<slot>``), whether it reads it ``transposed``, and the reading node."""

    kind: str
    transposed: bool
    node: Any = field(compare=False, repr=False)


def reads(index: GraphIndex, name: str) -> list[Read]:
    """Every op reading ``name``, through pass-through ops and DequantizeLinear."""
    found: list[Read] = []
    pending, seen = [(name, False)], set()
    while pending:
        current, flipped = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for node, slot in index.consumers.get(current, ()):
            if slot == 0 and (
                node.op_type in PASS_THROUGH_OPS or node.op_type == "DequantizeLinear"
            ):
                flip = node.op_type == "Transpose" and _attribute(node, "perm") == [1, 0]
                pending.extend((output, flipped ^ flip) for output in node.output if output)
                continue
            kind = _kind(node.op_type, slot)
            trans = bool(_attribute(node, _TRANS_ATTRIBUTE.get(kind, ""), 0))
            found.append(Read(kind, flipped ^ trans, node))
    return found


def _kind(op_type: str, slot: int) -> str:
    if _MATMUL_B.get(op_type) == slot:
        return "matmul-B"
    if _MATMUL_A.get(op_type) == slot:
        return "matmul-A"
    if _GATHER.get(op_type) == slot:
        return "gather"
    if _CONV.get(op_type) == slot:
        return "conv"
    return f"{op_type}:{slot}"


def as_read(values: np.ndarray, read: Read | None) -> np.ndarray:
    """The values as their op reads them (flipped back where the read is transposed)."""
    return values.T if read is not None and read.transposed and values.ndim == 2 else values


def matching_read(variant_read: Read | None, reference_reads: list[Read]) -> Read | None:
    """The reference's read of the same kind as the variant's (a tied embedding is read by a
    Gather and a MatMul), else its first."""
    for read in reference_reads:
        if variant_read is not None and read.kind == variant_read.kind:
            return read
    return reference_reads[0] if reference_reads else None


def to_reference_layout(
    values: np.ndarray,
    variant_read: Read | None,
    reference_read: Read | None,
    reference_shape: tuple[int, ...],
) -> tuple[np.ndarray, str | None, str | None] | str:
    """Values as read by their op, put in the reference's stored layout: the values, a layout
    problem and a note (None when there is none), or why the two cannot be compared at all.

    A layout that differs only by a transpose is a problem when both files read the weight
    with the same kind of op (then its orientation is known); otherwise (the reference slices
    an LSTM's weight, say) the values are compared transposed and a note says so.
    """
    values = as_read(values, reference_read)
    if values.shape == reference_shape:
        return values, None, None
    if values.size != math.prod(reference_shape):
        return f"shape {list(values.shape)} does not match the reference's {list(reference_shape)}"
    known = (
        variant_read is not None
        and reference_read is not None
        and variant_read.kind == reference_read.kind
    )
    if values.ndim == 2 and values.T.shape == reference_shape:
        if not known:
            return values.T, None, "compared transposed (the two files read it differently)"
        problem = (
            f"stored transposed: its op reads {list(values.shape)}, the reference's reads "
            f"{list(reference_shape)}"
        )
        return values.T, problem, None
    if [d for d in values.shape if d != 1] == [d for d in reference_shape if d != 1]:
        return values.reshape(reference_shape), None, None
    problem = f"stored as {list(values.shape)}, the reference as {list(reference_shape)}"
    return values.reshape(reference_shape), problem, None


def smooth_quant_scale(
    variant: GraphIndex, reference: GraphIndex, read: Read, rows: int, base_dir: Path
) -> tuple[np.ndarray, str] | None:
    """The per-row scale a variant-only ``Mul`` puts on the input of the MatMul that reads a
    weight of ``rows`` rows (through Quantize/DequantizeLinear and pass-through ops), and the
    Mul's label; None when there is none."""
    if read.kind != "matmul-B" or not read.node.input:
        return None
    activation = read.node.input[0]
    producer = variant.producers.get(activation)
    for _ in range(16):
        if producer is None or not producer.input:
            return None
        if producer.op_type not in _QUANTIZE_OPS and producer.op_type not in PASS_THROUGH_OPS:
            break
        producer = variant.producers.get(producer.input[0])
    if producer is None:
        return None
    output = producer.output[0] if producer.output else ""
    if producer.op_type != "Mul" or output in reference.producers or output in reference.consumers:
        return None
    constants = [
        name
        for name in producer.input
        if name in variant.initializers and name not in reference.initializers
    ]
    if len(constants) != 1 or len(producer.input) != 2:
        return None
    scale = read_array(variant.initializers[constants[0]], base_dir).astype(np.float64)
    if scale.size != rows or scale.shape[-1] != rows:
        return None
    return scale.reshape(-1), node_label(producer)


def _attribute(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default
