"""``health:structure``: no dangling node input, no unused initializer, and the reference's graph
inputs and outputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_onnxparity.diagnose.health.common import DETAIL_ITEMS, Outcome, listed, load_model
from pytest_onnxparity.onnxfile.dequantize import (
    MANTISSA_BITS,
)
from pytest_onnxparity.onnxfile.graph import (
    GraphIndex,
    node_label,
)


def check_structure(path: Path, reference_path: Path | None) -> Outcome:
    model = load_model(path)
    index = GraphIndex.of(model)
    dangling = [
        f"input {name!r} of {node_label(node)}: no node, initializer or graph input makes it"
        for node, name in _dangling_inputs(model.graph, frozenset())
    ]
    outputs = {value.name for value in model.graph.output}
    unused = [
        f"initializer {tensor.name!r} ({_describe_tensor(tensor)}): no node reads it"
        for tensor in model.graph.initializer
        if tensor.name not in index.consumers and tensor.name not in outputs
    ]
    io_problems: list[str] = []
    io_warnings: list[str] = []
    if reference_path is not None:
        io_problems, io_warnings = _io_differences(model, load_model(reference_path))
    details = {
        "dangling_inputs": dangling[:DETAIL_ITEMS],
        "unused_initializers": unused[:DETAIL_ITEMS],
        "io_differences": io_problems[:DETAIL_ITEMS],
    }
    warnings = [f"{path}: {line}" for line in io_warnings]
    problems = []
    if dangling:
        problems += [
            f"{path}: {len(dangling)} node inputs are dangling; the step that edited the graph "
            "dropped their producers, so re-run it",
            *listed(dangling),
        ]
    if unused:
        problems += [
            f"{path}: {len(unused)} initializers are unused; they bloat the file (a quantizer "
            "that kept the float weights?), so drop them (onnx.utils, onnxslim) or fix the step",
            *listed(unused),
        ]
    if io_problems:
        problems += [
            f"{path}: graph inputs/outputs differ from the reference {reference_path}; keep the "
            "reference's signature when making the variant (keep_io_types=True for fp16)",
            *listed(io_problems),
        ]
    return Outcome(problems, details, warnings)


def _dangling_inputs(graph: Any, outer: frozenset[str]) -> Iterator[tuple[Any, str]]:
    available = set(outer)
    available.update(value.name for value in graph.input)
    available.update(tensor.name for tensor in graph.initializer)
    available.update(sparse.values.name for sparse in graph.sparse_initializer)
    available.update(name for node in graph.node for name in node.output if name)
    scope = frozenset(available)
    for node in graph.node:
        for name in node.input:
            if name and name not in scope:
                yield node, name
        for attribute in node.attribute:
            if attribute.type == attribute.GRAPH:
                yield from _dangling_inputs(attribute.g, scope)
            elif attribute.type == attribute.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _dangling_inputs(subgraph, scope)


def _describe_tensor(tensor: Any) -> str:
    from onnx import helper

    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type).name
    except (KeyError, TypeError, ValueError):
        dtype = f"type {tensor.data_type}"
    return f"{dtype}[{', '.join(str(d) for d in tensor.dims)}]"


def _io_differences(model: Any, reference: Any) -> tuple[list[str], list[str]]:
    """Problems (missing or extra names, other element kind or rank) and warnings (another
    float precision, another order) between the model's signature and the reference's."""
    problems: list[str] = []
    warnings: list[str] = []
    for kind in ("input", "output"):
        mine, theirs = _signature(model, kind), _signature(reference, kind)
        problems += [
            f"graph {kind} {name!r}: missing; the reference has it"
            for name in theirs
            if name not in mine
        ]
        problems += [
            f"graph {kind} {name!r}: not in the reference" for name in mine if name not in theirs
        ]
        common = [name for name in theirs if name in mine]
        if [name for name in mine if name in theirs] != common:
            warnings.append(f"graph {kind}s are in another order than the reference's")
        for name in common:
            (dtype, rank), (ref_dtype, ref_rank) = mine[name], theirs[name]
            if dtype != ref_dtype:
                line = (
                    f"graph {kind} {name!r}: {dtype} in the variant, {ref_dtype} in the reference"
                )
                same_kind = _is_float(dtype) == _is_float(ref_dtype)
                (warnings if same_kind and _is_float(dtype) else problems).append(line)
            if rank is not None and ref_rank is not None and rank != ref_rank:
                problems.append(
                    f"graph {kind} {name!r}: rank {rank} in the variant, "
                    f"{ref_rank} in the reference"
                )
    return problems, warnings


def _signature(model: Any, kind: str) -> dict[str, tuple[str, int | None]]:
    from onnx import helper

    initializers = {tensor.name for tensor in model.graph.initializer}
    values = model.graph.input if kind == "input" else model.graph.output
    signature = {}
    for value in values:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        except (KeyError, TypeError, ValueError):
            dtype = f"type {tensor_type.elem_type}"
        rank = len(tensor_type.shape.dim) if tensor_type.HasField("shape") else None
        signature[value.name] = (dtype, rank)
    return signature


def _is_float(dtype: str) -> bool:
    return dtype in MANTISSA_BITS
